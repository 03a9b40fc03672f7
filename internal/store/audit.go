package store

import (
	"context"
	"time"

	"github.com/flightdeckhq/flightdeck/internal/store/internal/sqlcdb"
)

// AuditEvent is a change that is not a step of a run: a sign-in, a change
// of settings, users or roles.
type AuditEvent struct {
	ID          int64
	At          time.Time
	Actor       string
	Action      string
	App         string
	Environment string
	// RunID is the run the change was about, 0 for none.
	RunID      int64
	Detail     string
	RemoteAddr string
	UserAgent  string
}

// RecordAudit appends an audit event; audit events are never changed.
func (s *Store) RecordAudit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	var runID *int64
	if e.RunID != 0 {
		runID = &e.RunID
	}
	row, err := s.q.AuditInsert(ctx, sqlcdb.AuditInsertParams{
		At: s.Now(), Actor: e.Actor, Action: e.Action, App: e.App, Environment: e.Environment,
		RunID: runID, Detail: e.Detail, RemoteAddr: e.RemoteAddr, UserAgent: e.UserAgent,
	})
	if err != nil {
		return AuditEvent{}, mapError(err)
	}
	return AuditEvent{
		ID: row.ID, At: row.At, Actor: row.Actor, Action: row.Action, App: row.App, Environment: row.Environment,
		RunID: e.RunID, Detail: row.Detail, RemoteAddr: row.RemoteAddr, UserAgent: row.UserAgent,
	}, nil
}

// AuditKindFlag is the Kind of audit log entries that are flag events:
// changes of a flag's definition or state, kills, and segment changes.
const AuditKindFlag = "flag"

// AuditEntry is one line of the audit log: an audit event (Kind "audit"),
// a run event (Kind "run", with RunID) or a flag event (Kind "flag", its
// Action the event type and its Detail a description of the change).
type AuditEntry struct {
	Kind        string
	ID          int64
	At          time.Time
	Actor       string
	Action      string
	App         string
	Environment string
	RunID       int64
	Detail      string
	// RemoteAddr and UserAgent say where the change came from; empty for
	// the engine's own steps and for events recorded before origins were.
	RemoteAddr string
	UserAgent  string
}

// AuditFilter selects audit log entries; empty fields match everything.
// Before, when set, continues a listing after its last entry.
type AuditFilter struct {
	App         string
	Environment string
	Actor       string
	// HideEngine leaves out the engine's own steps, so that what people
	// and tokens did stands out.
	HideEngine bool
	// From and To, when not zero, keep entries at or after From and
	// before To.
	From   time.Time
	To     time.Time
	Before *AuditEntry
	Limit  int
}

// ListAudit returns audit log entries newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	p := sqlcdb.AuditListParams{
		App: f.App, Environment: f.Environment, Actor: f.Actor, HideEngine: f.HideEngine,
		FirstPage: f.Before == nil, MaxRows: int32(f.Limit),
	}
	if !f.From.IsZero() {
		p.FromAt = &f.From
	}
	if !f.To.IsZero() {
		p.ToAt = &f.To
	}
	if f.Before != nil {
		p.BeforeAt, p.BeforeKind, p.BeforeID = f.Before.At, f.Before.Kind, f.Before.ID
	}
	rows, err := s.q.AuditList(ctx, p)
	if err != nil {
		return nil, mapError(err)
	}
	return mapRows(rows, func(r sqlcdb.AuditListRow) AuditEntry {
		e := AuditEntry{
			Kind: r.Kind, ID: r.ID, At: r.At, Actor: r.Actor, Action: r.Action, App: r.App,
			Environment: r.Environment, RunID: r.RunID, Detail: r.Detail, RemoteAddr: r.RemoteAddr,
			UserAgent: r.UserAgent,
		}
		if r.Kind == AuditKindFlag {
			e.Detail = DescribeFlagEvent(FlagEvent{ID: r.ID, Type: r.Action, Payload: r.FlagPayload}, r.FlagKey, r.FlagDefaultVariant)
		}
		return e
	}), nil
}

// auditBatch is how many entries EachAudit reads per query.
const auditBatch = 500

// EachAudit calls fn with every audit log entry f selects, newest first,
// reading the log in batches so that an export of any length holds only
// one batch in memory. f.Before and f.Limit are ignored. An error from fn
// stops the walk and is returned.
func (s *Store) EachAudit(ctx context.Context, f AuditFilter, fn func(AuditEntry) error) error {
	f.Before, f.Limit = nil, auditBatch
	for {
		entries, err := s.ListAudit(ctx, f)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(entries) < auditBatch {
			return nil
		}
		last := entries[len(entries)-1]
		f.Before = &last
	}
}
