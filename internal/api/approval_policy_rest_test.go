package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func TestApprovalPolicyThroughTheAPI(t *testing.T) {
	t.Parallel()
	a := flagSetup(t)
	path := "/api/v1/apps/shop/environments/prod/approval-policy"

	p := decode[apigen.ApprovalPolicy](t, a.must(http.StatusOK, http.MethodGet, path, ""))
	require.Equal(t, 1, p.MinApprovers, "one approver until a policy is set")
	require.Nil(t, p.Timeout)

	for body, field := range map[string]string{
		`{}`:                                    "min_approvers",
		`{"min_approvers": 0}`:                  "min_approvers",
		`{"min_approvers": 2, "timeout": "5s"}`: "timeout",
		`{"min_approvers": 2, "timeout": "soon"}`:   "timeout",
		`{"min_approvers": 2, "on_timeout": "nap"}`: "on_timeout",
		`{"min_approvers": 2, "quorum": 3}`:         "quorum",
		`{"min_approvers": 2, "in_window_only": 1}`: "in_window_only",
	} {
		rec := a.as("admin-token", exchange{method: http.MethodPut, path: path, body: body})
		require.Equal(t, http.StatusUnprocessableEntity, rec.Code, "%s: %s", body, rec.Body.String())
		require.Contains(t, rec.Body.String(), `"field":"`+field+`"`, body)
	}
	rec := a.as("ci", exchange{method: http.MethodPut, path: path, body: `{"min_approvers": 2}`})
	require.Equal(t, http.StatusForbidden, rec.Code, "changing a policy needs the admin scope")
	require.Equal(t, 1, decode[apigen.ApprovalPolicy](t, a.must(http.StatusOK, http.MethodGet, path, "")).MinApprovers, "refusals change nothing")

	rec = a.as("admin-token", exchange{method: http.MethodPut, path: path, body: `{"min_approvers": 2, "timeout": "4h", "on_timeout": "escalate", "in_window_only": true}`})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	p = decode[apigen.ApprovalPolicy](t, a.must(http.StatusOK, http.MethodGet, path, ""))
	require.Equal(t, 2, p.MinApprovers)
	require.Equal(t, "4h", *p.Timeout)
	require.Equal(t, apigen.ApprovalPolicyOnTimeoutEscalate, p.OnTimeout)
	require.True(t, p.InWindowOnly)
	require.Equal(t, "token:admin-token", *p.UpdatedBy)

	entries, err := a.store.ListAudit(context.Background(), store.AuditFilter{App: "shop", Limit: 10})
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	require.Equal(t, "environment.approval_policy_set", entries[0].Action, "the change is audited")
	require.Equal(t, "token:admin-token", entries[0].Actor)
	require.Contains(t, entries[0].Detail, "2 different approvers")
}
