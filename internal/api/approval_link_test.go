package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api"
	"github.com/flightdeckhq/flightdeck/internal/engine"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// linkClock is the approval links' clock.
type linkClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *linkClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *linkClock) advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func TestApprovalLinkOpensTheApprovalAndApprovesNothing(t *testing.T) {
	t.Parallel()
	clock := &linkClock{t: time.Now()}
	var eng *engine.Engine
	s := newPageServer(t, withEngine(healthyRecordAnalyzer{}, &eng), func(cfg *api.Config) {
		key, err := cfg.Pages.(*store.Store).SigningKey(context.Background(), "approval-links")
		if err != nil {
			panic(err)
		}
		cfg.ApprovalLinks = api.NewApprovalLinks(key, "", clock.now)
	})
	f := &releaseFixture{pageServer: s, eng: eng}
	f.addUser("ana", false, "checkout/production=approver")
	app, env := f.environment("checkout", "production", nil)
	run := f.waitingRing(app, env, "ci")
	id := fmt.Sprint(run.ID)

	ana := f.signIn("ana")
	list := ana.get("/approvals")
	full := attr(list.byTestID("approval-chat-link-"+id), "value")
	require.True(t, strings.HasPrefix(full, f.URL+"/approvals/link/"), "an absolute link to paste into chat: %s", full)
	link := strings.TrimPrefix(full, f.URL)

	// Someone who follows the link from chat signs in first, then lands on
	// the approval; following it changes nothing.
	anonymous := f.anonymous().get(link)
	require.Contains(t, anonymous.Location+anonymous.Body, "login")
	redirect := ana.get(link)
	require.Equal(t, http.StatusSeeOther, redirect.Code)
	require.Equal(t, "/approvals#approval-"+id, redirect.Location)
	opened := ana.get(strings.Split(redirect.Location, "#")[0])
	require.Equal(t, http.StatusOK, opened.Code)
	require.NotNil(t, opened.byTestID("approval-run-"+id), "the link opens the approval")
	require.NotNil(t, opened.byTestID("approval-approve-"+id))
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State, "a GET approves nothing")
	approvals, err := f.Store.ListApprovals(context.Background(), run.ID)
	require.NoError(t, err)
	require.Empty(t, approvals)

	// A link altered by one character is refused.
	tampered := link[:len(link)-2] + map[bool]string{true: "A", false: "B"}[link[len(link)-2] != 'A'] + link[len(link)-1:]
	bad := ana.get(tampered)
	require.Equal(t, http.StatusBadRequest, bad.Code)
	require.Contains(t, bad.text("refusal-message"), "not one Flightdeck made")
	require.Equal(t, http.StatusBadRequest, ana.get("/approvals/link/short").Code)

	// After a day the link has expired.
	clock.advance(api.ApprovalLinkTTL)
	expired := ana.get(link)
	require.Equal(t, http.StatusGone, expired.Code)
	require.Contains(t, expired.text("refusal-message"), "expired")

	// Once the ring was approved, a fresh link leads to the run itself.
	clock.advance(-api.ApprovalLinkTTL)
	require.Equal(t, http.StatusSeeOther, ana.post("/approvals/"+id+"/approve", nil).Code)
	require.Equal(t, "/runs/"+id+"?from=approval-link", ana.get(link).Location)
}

func TestApprovalsPageCountsDistinctApprovers(t *testing.T) {
	t.Parallel()
	f := newReleaseFixture(t)
	f.addUser("ana", false, "checkout/production=approver")
	f.addUser("bob", false, "checkout/production=approver")
	app, env := f.environment("checkout", "production", nil)
	_, err := f.Store.SetApprovalPolicy(context.Background(), store.ApprovalPolicy{EnvironmentID: env.ID, MinApprovers: 2, OnTimeout: store.OnTimeoutReject}, "admin")
	require.NoError(t, err)
	run := f.waitingRing(app, env, "ci")
	id := fmt.Sprint(run.ID)

	ana := f.signIn("ana")
	require.Contains(t, ana.get("/approvals").text("approval-quorum-"+id), "0 of 2 approvals")
	require.Equal(t, http.StatusSeeOther, ana.post("/approvals/"+id+"/approve", nil).Code)
	require.Equal(t, store.RunAwaitingApproval, f.run(run.ID).State, "one of two approvals keeps the run waiting")
	page := ana.get("/approvals")
	require.Contains(t, page.text("approval-quorum-"+id), "1 of 2 approvals")
	require.Contains(t, page.text("approval-quorum-"+id), "ana")
	require.Contains(t, page.text("approval-approve-blocked-"+id), "You approved this gate")

	bob := f.signIn("bob")
	require.NotNil(t, bob.get("/approvals").byTestID("approval-approve-"+id))
	require.Equal(t, http.StatusSeeOther, bob.post("/approvals/"+id+"/approve", nil).Code)
	require.NotEqual(t, store.RunAwaitingApproval, f.run(run.ID).State, "the second approver moves it on")
}

func TestRefusedApprovalsAreAuditedAndSayWhy(t *testing.T) {
	t.Parallel()
	f := newReleaseFixture(t)
	f.addUser("ana", false, "checkout/production=approver")
	app, env := f.environment("checkout", "production", nil)
	_, err := f.Store.SetApprovalPolicy(context.Background(), store.ApprovalPolicy{EnvironmentID: env.ID, MinApprovers: 2, OnTimeout: store.OnTimeoutReject}, "admin")
	require.NoError(t, err)
	run := f.waitingRing(app, env, "ci")
	id := fmt.Sprint(run.ID)

	ana := f.signIn("ana")
	require.Equal(t, http.StatusSeeOther, ana.post("/approvals/"+id+"/approve", nil).Code)
	again := ana.post("/approvals/"+id+"/approve", nil)
	require.Equal(t, http.StatusConflict, again.Code)
	require.Contains(t, again.text("refusal-message"), "ana approved this phase already; it needs 2 different approvers (1 so far)")

	entries, err := f.Store.ListAudit(context.Background(), store.AuditFilter{App: "checkout", Limit: 50})
	require.NoError(t, err)
	refused := 0
	for _, e := range entries {
		if e.Action == "run.approve_refused" {
			refused++
			require.Equal(t, "ana", e.Actor)
			require.Equal(t, run.ID, e.RunID)
		}
	}
	require.Equal(t, 1, refused, "the refused attempt is in the audit log")
}
