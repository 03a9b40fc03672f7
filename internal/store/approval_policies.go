package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// What happens to an approval nobody gives within the policy's timeout.
const (
	OnTimeoutReject   = "reject"
	OnTimeoutEscalate = "escalate"
)

// Bounds of an approval policy.
const (
	MaxMinApprovers  = 10
	MinApprovalWait  = time.Minute
	MaxApprovalWait  = 30 * 24 * time.Hour
	defaultApprovers = 1
)

// ApprovalPolicy is how an environment's approval gates are decided.
type ApprovalPolicy struct {
	EnvironmentID int64
	// MinApprovers is how many different people must approve a gate; a
	// ring may ask for more.
	MinApprovers int
	// Timeout is how long a gate waits before OnTimeout; 0 waits forever.
	Timeout   time.Duration
	OnTimeout string
	// InWindowOnly takes approvals only while the environment's deploy
	// window is open (and it is not frozen).
	InWindowOnly bool
	UpdatedAt    time.Time
	UpdatedBy    string
}

// PolicyFieldError is one problem with an approval policy field.
type PolicyFieldError struct {
	Field, Message string
}

// PolicyError lists every problem with an approval policy.
type PolicyError struct{ Errors []PolicyFieldError }

func (e *PolicyError) Error() string {
	msg := "invalid approval policy:"
	for _, fe := range e.Errors {
		msg += " " + fe.Field + ": " + fe.Message + ";"
	}
	return msg
}

// Check returns the policy's problems as a *PolicyError, or nil.
func (p ApprovalPolicy) Check() error {
	var errs []PolicyFieldError
	if p.MinApprovers < 1 || p.MinApprovers > MaxMinApprovers {
		errs = append(errs, PolicyFieldError{"min_approvers", fmt.Sprintf("must be 1 to %d people, got %d", MaxMinApprovers, p.MinApprovers)})
	}
	if p.Timeout != 0 && (p.Timeout < MinApprovalWait || p.Timeout > MaxApprovalWait) {
		errs = append(errs, PolicyFieldError{"timeout", fmt.Sprintf("must be between %s and 30 days, or left out to wait forever; got %s", MinApprovalWait, p.Timeout)})
	}
	if p.OnTimeout != OnTimeoutReject && p.OnTimeout != OnTimeoutEscalate {
		errs = append(errs, PolicyFieldError{"on_timeout", fmt.Sprintf("must be %q or %q, got %q", OnTimeoutReject, OnTimeoutEscalate, p.OnTimeout)})
	}
	if len(errs) > 0 {
		return &PolicyError{Errors: errs}
	}
	return nil
}

func approvalPolicyFromRow(r sqlcdb.ApprovalPolicy) ApprovalPolicy {
	p := ApprovalPolicy{EnvironmentID: r.EnvironmentID, MinApprovers: int(r.MinApprovers), OnTimeout: r.OnTimeout, InWindowOnly: r.InWindowOnly,
		UpdatedAt: r.UpdatedAt, UpdatedBy: r.UpdatedBy}
	if r.TimeoutMs != nil {
		p.Timeout = time.Duration(*r.TimeoutMs) * time.Millisecond
	}
	return p
}

// ApprovalPolicy returns the environment's policy; an environment that has
// none needs one approver and waits forever.
func (s *Store) ApprovalPolicy(ctx context.Context, envID int64) (ApprovalPolicy, error) {
	r, err := s.q.ApprovalPolicyGet(ctx, envID)
	if errors.Is(err, pgx.ErrNoRows) {
		return ApprovalPolicy{EnvironmentID: envID, MinApprovers: defaultApprovers, OnTimeout: OnTimeoutReject}, nil
	}
	if err != nil {
		return ApprovalPolicy{}, mapError(err)
	}
	return approvalPolicyFromRow(r), nil
}

// SetApprovalPolicy replaces the environment's policy; an invalid one is a
// *PolicyError and changes nothing.
func (s *Store) SetApprovalPolicy(ctx context.Context, p ApprovalPolicy, actor string) (ApprovalPolicy, error) {
	if err := p.Check(); err != nil {
		return ApprovalPolicy{}, err
	}
	var timeout *int64
	if p.Timeout > 0 {
		ms := p.Timeout.Milliseconds()
		timeout = &ms
	}
	r, err := s.q.ApprovalPolicyUpsert(ctx, sqlcdb.ApprovalPolicyUpsertParams{
		EnvironmentID: p.EnvironmentID, MinApprovers: int32(p.MinApprovers), TimeoutMs: timeout, OnTimeout: p.OnTimeout,
		InWindowOnly: p.InWindowOnly, Now: s.Now(), UpdatedBy: cmpActor(actor),
	})
	if err != nil {
		return ApprovalPolicy{}, mapError(err)
	}
	return approvalPolicyFromRow(r), nil
}

// RecordEscalation appends an approval.escalated event for the run's
// waiting phase unless one is there already, under the run's row lock so
// replicas record it once. It reports whether it recorded one.
func (s *Store) RecordEscalation(ctx context.Context, runID int64, phase int, ev Event) (bool, error) {
	recorded := false
	err := s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.q.RunLockForEscalation(ctx, runID); err != nil {
			return mapError(err)
		}
		found, err := tx.q.RunEventExistsForPhase(ctx, sqlcdb.RunEventExistsForPhaseParams{RunID: runID, Type: ev.Type, Phase: int32(phase)})
		if err != nil {
			return mapError(err)
		}
		if found {
			return nil
		}
		if _, err := tx.appendEvent(ctx, runID, ev); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	return recorded, err
}
