package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alexedwards/scs/v2"
	"github.com/labstack/echo/v4"

	"github.com/flightdeckhq/flightdeck/internal/analysis"
	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
	"github.com/flightdeckhq/flightdeck/internal/store"
	"github.com/flightdeckhq/flightdeck/web/templates"
)

// ApprovalStore is what the approvals page reads and records: the runs
// waiting at a gate, the decision an approval rests on, who decided a gate
// already, and the audit event that keeps that decision with the approval.
type ApprovalStore interface {
	ListInFlightRuns(ctx context.Context, states []store.RunState, limit int) ([]store.InFlightRun, error)
	Run(ctx context.Context, id int64) (store.Run, error)
	AppByID(ctx context.Context, id int64) (store.App, error)
	EnvironmentByID(ctx context.Context, id int64) (store.Environment, error)
	LatestDecision(ctx context.Context, runID int64) (store.Decision, error)
	ListApprovals(ctx context.Context, runID int64) ([]store.Approval, error)
	RecordAudit(ctx context.Context, e store.AuditEvent) (store.AuditEvent, error)
	ApprovalPolicy(ctx context.Context, envID int64) (store.ApprovalPolicy, error)
}

type approvalHandlers struct {
	store    ApprovalStore
	runs     RunService
	sessions *scs.SessionManager
	// links, when set, gives each waiting run a signed link for chat.
	links *ApprovalLinks
}

// approvals lists the runs waiting for an approval.
func (h *approvalHandlers) approvals(c echo.Context) error {
	p := pageFor(c, "Approvals", "approvals")
	p.Flash = takeNotice(h.sessions, c)
	v, err := buildApprovalsView(c.Request().Context(), h.store, *memberFrom(c), time.Now())
	if err != nil {
		return err
	}
	if h.links != nil {
		for i := range v.Items {
			link := h.links.URL(v.Items[i].RunID, v.Items[i].PhaseNumber-1)
			if strings.HasPrefix(link, "/") {
				// Without a public URL, the address this page was asked at is
				// the best guess at where people reach the server.
				link = c.Scheme() + "://" + c.Request().Host + link
			}
			v.Items[i].ChatLink = link
		}
	}
	return render(c, http.StatusOK, templates.Approvals(p, v))
}

// approve and reject answer the gate a run waits at.
func (h *approvalHandlers) approve(c echo.Context) error { return h.decide(c, engine.ActionApprove) }

func (h *approvalHandlers) reject(c echo.Context) error { return h.decide(c, engine.ActionReject) }

// decide checks the member's role and the comment, records the approval
// or rejection through the engine, and keeps the decision it rested on in
// the audit log.
func (h *approvalHandlers) decide(c echo.Context, action engine.Action) error {
	ctx := c.Request().Context()
	m := memberFrom(c)
	verb, past := "approving", "approved"
	if action == engine.ActionReject {
		verb, past = "rejecting", "rejected"
	}
	target, status, refusal, err := loadActionTarget(ctx, h.store, c.Param("run"))
	if err != nil {
		return err
	}
	if refusal != "" {
		return refusePage(c, status, refusal)
	}
	run, app, env := target.run, target.app, target.env
	where := app.Slug + "/" + env.Name
	if !m.Can(app.Slug, env.Name, auth.RoleApprover) {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"You are %s on %s; %s a run needs the approver role there. Nothing was changed.",
			withArticle(m.RoleOn(app.Slug, env.Name)), where, verb))
	}
	if action == engine.ActionApprove && env.ApproverNotStarter && run.CreatedBy == m.Actor() {
		return refusePage(c, http.StatusForbidden, fmt.Sprintf(
			"%s wants someone other than the person who started a run to approve it, and you started run %d. Ask another approver; nothing was changed.",
			where, run.ID))
	}

	comment := strings.TrimSpace(c.FormValue("comment"))
	if problem := checkApprovalComment(comment); problem != "" {
		v, err := buildApprovalsView(ctx, h.store, *m, time.Now())
		if err != nil {
			return err
		}
		found := false
		for i := range v.Items {
			if v.Items[i].RunID == run.ID {
				v.Items[i].Comment, v.Items[i].CommentError, v.Items[i].CommentFor = comment, problem, string(action)
				found = true
			}
		}
		p := pageFor(c, "Approvals", "approvals")
		p.Flash, p.FlashError = fmt.Sprintf("Run %d on %s was not %s: %s", run.ID, where, past, problem), true
		if !found {
			p.Flash += " It is no longer waiting, either."
		}
		return render(c, http.StatusUnprocessableEntity, templates.Approvals(p, v))
	}
	if h.runs == nil {
		return refusePage(c, http.StatusServiceUnavailable,
			"This Flightdeck server runs without its engine, so approvals cannot be recorded here. Nothing was changed.")
	}

	// The decision the gate is answered on, read before answering: the
	// engine keeps judging while a run waits, and the audit log must say
	// what the approver had in front of them.
	decision, err := h.store.LatestDecision(ctx, run.ID)
	hasDecision := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("reading the latest decision on run %d: %w", run.ID, err)
	}
	res, err := h.runs.Act(ctx, run.ID, engine.ActionRequest{Action: action, Actor: m.Actor(), Comment: comment})
	if aErr, ok := errors.AsType[*engine.ActionError](err); ok {
		// Every attempt is kept: a refused one says who tried and why.
		if _, rerr := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
			Actor: m.Actor(), Action: "run." + string(action) + "_refused", App: app.Slug, Environment: env.Name, RunID: run.ID, Detail: aErr.Detail,
		})); rerr != nil {
			return fmt.Errorf("recording the refused %s of run %d: %w", action, run.ID, rerr)
		}
		if aErr.State == store.RunAwaitingApproval {
			return refusePage(c, http.StatusConflict, fmt.Sprintf("Run %d was not %s: %s. Nothing was changed.", run.ID, past, aErr.Detail))
		}
		return refusePage(c, http.StatusConflict, h.noLongerWaiting(ctx, run, where))
	}
	if err != nil {
		return fmt.Errorf("%s run %d: %w", verb, run.ID, err)
	}

	detail := approvalEvidence(run, decision, hasDecision)
	if comment != "" {
		detail += " Comment: " + comment
	}
	if _, err := h.store.RecordAudit(ctx, auditFrom(c, store.AuditEvent{
		Actor: m.Actor(), Action: "run." + past, App: app.Slug, Environment: env.Name, RunID: run.ID, Detail: detail,
	})); err != nil {
		return fmt.Errorf("run %d was %s, but keeping the decision it rested on in the audit log failed: %w", run.ID, past, err)
	}

	message := fmt.Sprintf("You %s %s of run %d on %s.", past, phaseLabel(run), run.ID, where)
	switch {
	case action == engine.ActionReject:
		message += " It is rolling back."
	case res.Run.State == store.RunSucceeded:
		message += fmt.Sprintf(" The run is done: %s is stable.", run.ToVersion)
	default:
		message += " The next phase is starting."
	}
	keepNotice(h.sessions, c, message)
	return c.Redirect(http.StatusSeeOther, "/approvals")
}

// noLongerWaiting explains a gate that was answered or left meanwhile: who
// answered it, when, and where the run is now.
func (h *approvalHandlers) noLongerWaiting(ctx context.Context, before store.Run, where string) string {
	msg := fmt.Sprintf("Run %d on %s is no longer waiting for an approval", before.ID, where)
	if approvals, err := h.store.ListApprovals(ctx, before.ID); err == nil && len(approvals) > 0 {
		last := approvals[len(approvals)-1]
		msg += fmt.Sprintf(": %s %s it at %s", last.Actor, last.Outcome, last.At.UTC().Format("15:04:05 UTC"))
	}
	if now, err := h.store.Run(ctx, before.ID); err == nil {
		msg += fmt.Sprintf("; it is %s now", stateWords(now.State))
	}
	return msg + ". Nothing was changed."
}

// checkApprovalComment says what is wrong with a comment, or "".
func checkApprovalComment(comment string) string {
	if !utf8.ValidString(comment) {
		return "the comment is not valid text."
	}
	if n := utf8.RuneCountInString(comment); n > templates.MaxApprovalComment {
		return fmt.Sprintf("the comment has %d characters; at most %d fit.", n, templates.MaxApprovalComment)
	}
	for _, r := range comment {
		if r < ' ' && r != '\n' && r != '\r' && r != '\t' {
			return "the comment contains control characters; write plain text."
		}
	}
	return ""
}

// approvalEvidence describes the decision an approval rested on, for the
// audit log: which decision, its verdict, when, and its sentence.
func approvalEvidence(run store.Run, d store.Decision, has bool) string {
	head := fmt.Sprintf("run %d, %s:", run.ID, phaseLabel(run))
	if !has {
		return head + " no analysis decision on this run; decided without one."
	}
	return fmt.Sprintf("%s decision %d on phase %d at %s, verdict %s: %s", head, d.ID, d.PhaseIndex+1,
		d.At.UTC().Format("2006-01-02 15:04:05 UTC"), d.Verdict, d.Explanation)
}

// phaseLabel names the run's current phase from its plan, "phase 2" when
// the plan cannot be read.
func phaseLabel(run store.Run) string {
	var p struct {
		Phases []struct {
			Name string `json:"name"`
		} `json:"phases"`
	}
	if json.Unmarshal(run.Plan, &p) == nil && run.PhaseIndex < len(p.Phases) && p.Phases[run.PhaseIndex].Name != "" {
		return p.Phases[run.PhaseIndex].Name
	}
	return fmt.Sprintf("phase %d", run.PhaseIndex+1)
}

// buildApprovalsView reads the runs waiting for an approval: the ones the
// member may decide first, then the longest waiting.
func buildApprovalsView(ctx context.Context, st ApprovalStore, m auth.Member, now time.Time) (templates.ApprovalsView, error) {
	runs, err := st.ListInFlightRuns(ctx, []store.RunState{store.RunAwaitingApproval}, maxInFlight+1)
	if err != nil {
		return templates.ApprovalsView{}, fmt.Errorf("listing runs awaiting approval: %w", err)
	}
	v := templates.ApprovalsView{Now: now}
	if len(runs) > maxInFlight {
		runs, v.Truncated = runs[:maxInFlight], true
	}
	for _, r := range runs {
		it := approvalItem(r, m, now)
		if err := countApprovals(ctx, st, r, m, &it); err != nil {
			return templates.ApprovalsView{}, err
		}
		v.Items = append(v.Items, it)
	}
	slices.SortStableFunc(v.Items, func(a, b templates.ApprovalItem) int {
		if a.CanDecide != b.CanDecide {
			if a.CanDecide {
				return -1
			}
			return 1
		}
		return cmp.Compare(waitedSince(a), waitedSince(b))
	})
	return v, nil
}

// waitedSince orders items by how long they have waited, oldest first.
func waitedSince(it templates.ApprovalItem) int64 {
	if it.WaitingSince == nil {
		return 0
	}
	return it.WaitingSince.UnixMicro()
}

// approvalItem turns a waiting run into what the approvals page shows.
func approvalItem(r store.InFlightRun, m auth.Member, now time.Time) templates.ApprovalItem {
	it := templates.ApprovalItem{
		RunID: r.ID, App: r.AppSlug, Environment: r.Environment, Tier: r.Tier,
		FromVersion: r.FromVersion, ToVersion: r.ToVersion, Strategy: r.Strategy, CreatedBy: r.CreatedBy,
		PhaseNumber: r.PhaseIndex + 1, PhaseCount: r.PhaseCount, PhaseName: fmt.Sprintf("phase %d", r.PhaseIndex+1),
		Extensions: r.Extensions, WaitingSince: r.WaitingSince,
	}
	var phase plan.Phase
	if json.Unmarshal(r.Phase, &phase) == nil {
		it.PhaseName = cmp.Or(phase.Name, it.PhaseName)
		it.PhaseExposure = phase.ExposedShare
		it.PlannedBake = time.Duration(phase.Bake) + r.BakeExtension
	}
	var next plan.Phase
	if len(r.NextPhase) > 0 && json.Unmarshal(r.NextPhase, &next) == nil {
		it.NextName = cmp.Or(next.Name, fmt.Sprintf("phase %d", r.PhaseIndex+2))
		it.NextExposure = next.ExposedShare
		it.NextBake = time.Duration(next.Bake)
		it.NextApproval = next.ApprovalRequired || next.ManualPromote
	}
	if r.PhaseStartedAt != nil {
		baked := now.Sub(*r.PhaseStartedAt)
		it.Baked = &baked
	}
	if d := r.Decision; d != nil {
		ad := &templates.ApprovalDecision{
			ID: d.ID, At: d.At, Verdict: d.Verdict, Explanation: d.Explanation, PhaseNumber: d.PhaseIndex + 1,
		}
		var rec analysis.Decision
		if json.Unmarshal(d.Record, &rec) == nil {
			for _, mr := range rec.Metrics {
				if mr.Metric == analysis.MetricErrorRate {
					ad.HasRequests = true
					ad.CandidateRequests, ad.BaselineRequests = mr.CandidateN, mr.BaselineN
					ad.HasBaseline = rec.BaselineVersion != ""
				}
			}
		}
		it.Decision = ad
	}
	role := m.RoleOn(r.AppSlug, r.Environment)
	it.CanDecide = role.Includes(auth.RoleApprover)
	if !it.CanDecide {
		it.ReadOnly = fmt.Sprintf("Deciding needs the approver role on %s; you are %s there.", it.Where(), withArticle(role))
	}
	if it.CanDecide && r.ApproverNotStarter && r.CreatedBy == m.Actor() {
		it.ApproveBlocked = fmt.Sprintf("You started this run, and %s wants another approver to approve it. You may still reject it.", it.Where())
	}
	return it
}

// countApprovals fills in how many different people the gate needs and
// who has approved it so far, for gates that need more than one.
func countApprovals(ctx context.Context, st ApprovalStore, r store.InFlightRun, m auth.Member, it *templates.ApprovalItem) error {
	policy, err := st.ApprovalPolicy(ctx, r.EnvID)
	if err != nil {
		return fmt.Errorf("reading the approval policy of %s/%s: %w", r.AppSlug, r.Environment, err)
	}
	needed := policy.MinApprovers
	var phase plan.Phase
	if json.Unmarshal(r.Phase, &phase) == nil {
		needed = max(needed, phase.MinApprovers)
	}
	if needed <= 1 {
		return nil
	}
	approvals, err := st.ListApprovals(ctx, r.ID)
	if err != nil {
		return fmt.Errorf("reading the approvals of run %d: %w", r.ID, err)
	}
	it.ApprovalsNeeded = needed
	for _, a := range approvals {
		if a.PhaseIndex == r.PhaseIndex && a.Outcome == "approved" {
			it.ApprovedBy = append(it.ApprovedBy, a.Actor)
		}
	}
	if it.CanDecide && it.ApproveBlocked == "" && slices.Contains(it.ApprovedBy, m.Actor()) {
		it.ApproveBlocked = fmt.Sprintf("You approved this gate; it needs %d different approvers, so it waits for %d more.", needed, needed-len(it.ApprovedBy))
	}
	return nil
}
