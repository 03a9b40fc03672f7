package main

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
)

// killSwitchBound is how soon every replica must serve a flag change. The
// change travels by a Postgres notification and is expected within a few
// milliseconds; the bound is generous so that a busy machine does not fail
// the test, yet far below the periodic reload (30 s) that would otherwise
// hide a notification that never arrives.
const killSwitchBound = time.Second

// TestKillSwitchReachesEveryReplica runs two servers against one database,
// as two replicas behind a load balancer. The kill switch clicked through
// the REST API of replica A turns the flag off on both within a second, as
// OFREP clients of either replica see it. When replica A dies, B keeps
// serving flags from its cache, and changes made through B (turning the
// flag on, killing it again) reach B's clients as fast.
func TestKillSwitchReachesEveryReplica(t *testing.T) {
	t.Parallel()
	token, _, _, err := auth.Generate()
	require.NoError(t, err)
	env := []string{"DATABASE_URL=" + dbtest.URL(t), "FLIGHTDECK_ADMIN_TOKEN=" + token}
	a := startServer(t, env, "--demo", "off")
	b := startServer(t, env, "--demo", "off")
	restA := &benchREST{t: t, base: a.url, token: token}
	restB := &benchREST{t: t, base: b.url, token: token}
	createFlagApp(t, restA)
	version := createKillSwitchFlag(t, restA)
	sdk := createSDKToken(t, restA, "checkout-web")

	_, err = watchServed([]*server{a, b}, sdk, true, killSwitchBound)()
	require.NoError(t, err, "the flag, turned on through replica A, is served by both replicas")

	wait := watchServed([]*server{a, b}, sdk, false, killSwitchBound)
	killed := killFlag(t, restA)
	require.Greater(t, killed, version, "the kill is a new version of the flag's state")
	_, err = wait()
	require.NoError(t, err, "the kill switch clicked on replica A reaches every replica")
	answer, err := evaluateKillSwitch(context.Background(), b, sdk)
	require.NoError(t, err)
	require.Equal(t, "DISABLED", answer.Reason, "a killed flag is served as disabled")
	require.Equal(t, "off", answer.Variant, "a killed flag serves its off variant")

	// Replica A dies without a chance to say goodbye.
	require.NoError(t, a.cmd.Process.Signal(syscall.SIGKILL))
	<-a.done
	answer, err = evaluateKillSwitch(context.Background(), b, sdk)
	require.NoError(t, err, "replica B serves flags with replica A gone")
	require.JSONEq(t, "false", string(answer.Value), "replica B still serves the killed flag as off")

	wait = watchServed([]*server{b}, sdk, true, killSwitchBound)
	version = turnFlagOn(t, restB, killed)
	_, err = wait()
	require.NoError(t, err, "the flag turned on through replica B is served by B")

	wait = watchServed([]*server{b}, sdk, false, killSwitchBound)
	require.Greater(t, killFlag(t, restB), version)
	_, err = wait()
	require.NoError(t, err, "the kill switch clicked on replica B reaches B")

	// The kills and the change in between are the flag's history, whichever
	// replica they were made through.
	var history struct {
		Items []struct {
			Type string `json:"type"`
		} `json:"items"`
	}
	restB.decode(restB.must("GET", flagPath(killSwitchFlag, false)+"/history", "", http.StatusOK), &history)
	var types []string
	for _, ev := range history.Items {
		types = append(types, ev.Type)
	}
	require.Equal(t, []string{"flag.killed", "flag.state_changed", "flag.killed", "flag.state_changed", "flag.created"}, types,
		"the flag's history, newest first")
}
