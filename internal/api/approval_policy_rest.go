package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// ApprovalPolicyStore reads and writes environments' approval policies;
// *store.Store implements it.
type ApprovalPolicyStore interface {
	ApprovalPolicy(ctx context.Context, envID int64) (store.ApprovalPolicy, error)
	SetApprovalPolicy(ctx context.Context, p store.ApprovalPolicy, actor string) (store.ApprovalPolicy, error)
}

// GetApprovalPolicy handles GET .../environments/{env}/approval-policy.
func (h *restHandlers) GetApprovalPolicy(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	p, err := h.store.ApprovalPolicy(c.Request().Context(), env.ID)
	if err != nil {
		return fmt.Errorf("reading the approval policy of %s/%s: %w", slug, name, err)
	}
	return c.JSON(http.StatusOK, approvalPolicyBody(p))
}

// SetApprovalPolicy handles PUT .../environments/{env}/approval-policy.
func (h *restHandlers) SetApprovalPolicy(c echo.Context, slug apigen.AppSlug, name apigen.EnvironmentName) error {
	o, err := readRequestObject(c)
	if err != nil {
		return err
	}
	p := store.ApprovalPolicy{OnTimeout: store.OnTimeoutReject}
	o.required("min_approvers")
	if n, ok := readValue[int](o, "min_approvers", "a whole number of people from 1 to 10"); ok {
		p.MinApprovers = n
	}
	if text, ok := o.str("timeout"); ok {
		d, err := plan.ParseDuration(text)
		if err != nil {
			o.add("timeout", "%v", err)
		}
		p.Timeout = time.Duration(d)
	}
	if v, ok := o.str("on_timeout"); ok {
		p.OnTimeout = v
	}
	if v, ok := o.boolean("in_window_only"); ok {
		p.InWindowOnly = v
	}
	if err := o.finish("min_approvers", "timeout", "on_timeout", "in_window_only"); err != nil {
		return err
	}
	actor, err := requestActor(c)
	if err != nil {
		return err
	}
	_, env, err := h.environment(c, slug, name)
	if err != nil {
		return err
	}
	p.EnvironmentID = env.ID
	stored, err := h.store.SetApprovalPolicy(c.Request().Context(), p, actor)
	if perr, ok := errors.AsType[*store.PolicyError](err); ok {
		fields := make([]plan.FieldError, len(perr.Errors))
		for i, fe := range perr.Errors {
			fields[i] = plan.FieldError{Field: fe.Field, Message: fe.Message}
		}
		return validationFailed(fields)
	}
	if err != nil {
		return fmt.Errorf("setting the approval policy of %s/%s: %w", slug, name, err)
	}
	if err := h.audit(c, store.AuditEvent{Action: "environment.approval_policy_set", App: slug, Environment: name,
		Detail: approvalPolicyForm(stored).Summary}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, approvalPolicyBody(stored))
}

func approvalPolicyBody(p store.ApprovalPolicy) apigen.ApprovalPolicy {
	out := apigen.ApprovalPolicy{MinApprovers: p.MinApprovers, OnTimeout: apigen.ApprovalPolicyOnTimeout(p.OnTimeout), InWindowOnly: p.InWindowOnly}
	if p.Timeout > 0 {
		d := plan.Duration(p.Timeout).String()
		out.Timeout = &d
	}
	if !p.UpdatedAt.IsZero() {
		out.UpdatedAt, out.UpdatedBy = &p.UpdatedAt, &p.UpdatedBy
	}
	return out
}
