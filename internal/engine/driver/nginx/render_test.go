package nginx

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/engine/driver"
	"github.com/flightdeckhq/flightdeck/internal/engine/plan"
)

// serverWeights reads "server addr weight=N" lines of the weighted upstream.
func serverWeights(t *testing.T, http string) map[string]int {
	t.Helper()
	_, mix, ok := strings.Cut(http, "_mix {")
	require.True(t, ok, "no weighted upstream in:\n%s", http)
	mix, _, _ = strings.Cut(mix, "}")
	out := map[string]int{}
	for _, m := range regexp.MustCompile(`server (\S+) weight=(\d+)`).FindAllStringSubmatch(mix, -1) {
		w, err := strconv.Atoi(m[2])
		require.NoError(t, err)
		out[m[1]] += w
	}
	return out
}

func TestRenderWeightsEachVersionByItsShare(t *testing.T) {
	t.Parallel()
	cfg := Config{Location: "/", ServerTemplate: "app-{version}-{index}:8080"}
	desired := plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 3, Weight: 90},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 2, Weight: 10},
	}}
	f, err := render(cfg, "checkout", "production", desired)
	require.NoError(t, err)
	weights := serverWeights(t, string(f.http))
	v1 := weights["app-v1-1:8080"] + weights["app-v1-2:8080"] + weights["app-v1-3:8080"]
	v2 := weights["app-v2-1:8080"] + weights["app-v2-2:8080"]
	require.Len(t, weights, 5)
	require.Equal(t, 9*v2, v1, "v1 gets exactly 90%% and v2 10%%: %v", weights)

	again, err := render(cfg, "checkout", "production", desired)
	require.NoError(t, err)
	require.Equal(t, f, again, "the same desired state renders the same bytes")

	// Without {index} a version has one address however many instances run.
	f, err = render(Config{Location: "/", ServerTemplate: "app-{version}:8080"}, "checkout", "production", desired)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"app-v1:8080": 9, "app-v2:8080": 1}, serverWeights(t, string(f.http)))

	// A servers list gives the first addresses up to the instance count.
	listed := Config{Location: "/", Servers: map[string][]string{"v1": {"a:1", "b:1", "c:1", "d:1"}, "v2": {"e:1"}}}
	f, err = render(listed, "checkout", "production", desired)
	require.NoError(t, err)
	require.Equal(t, map[string]int{"a:1": 3, "b:1": 3, "c:1": 3, "e:1": 1}, serverWeights(t, string(f.http)))
}

func TestRenderRoundsWeightsOfVeryUnevenFleets(t *testing.T) {
	t.Parallel()
	cfg := Config{Location: "/", ServerTemplate: "app-{version}-{index}:8080"}
	desired := plan.DesiredState{Versions: []plan.VersionState{
		{Version: "v1", Role: plan.RoleStable, Instances: 97, Weight: 67},
		{Version: "v2", Role: plan.RoleCandidate, Instances: 89, Weight: 33},
	}}
	f, err := render(cfg, "checkout", "production", desired)
	require.NoError(t, err)
	v1, v2 := 0, 0
	for addr, w := range serverWeights(t, string(f.http)) {
		require.LessOrEqual(t, w, maxServerWeight)
		if strings.HasPrefix(addr, "app-v1-") {
			v1 += w
		} else {
			v2 += w
		}
	}
	require.InDelta(t, 0.33, float64(v2)/float64(v1+v2), 0.005, "v2's share stays within half a point of 33%%")
}

func TestRenderHashesTheConfiguredUserID(t *testing.T) {
	t.Parallel()
	cfg := Config{Location: "/api/", ServerTemplate: "app-{version}:8080", HashKeys: map[string]string{"user_id": "$http_x_customer"}}
	desired := weights(90, 10)
	desired.Cohorts = []plan.CohortRule{
		{Name: "arm_b", Version: "v2", Match: plan.Match{Kind: plan.MatchHash, Key: "user_id", Percent: 10}},
		{Name: "arm_a", Version: "v1", Match: plan.Match{Kind: plan.MatchAll}},
	}
	f, err := render(cfg, "checkout", "production", desired)
	require.NoError(t, err)
	require.Contains(t, string(f.http), `split_clients "$http_x_customer"`)
	require.Contains(t, string(f.http), "    10% 1;\n")
	require.Contains(t, string(f.server), "location /api/ {")
}

func TestRenderWithoutTrafficAnswers503(t *testing.T) {
	t.Parallel()
	desired := plan.DesiredState{Versions: []plan.VersionState{{Version: "v1", Role: plan.RoleStable}}}
	f, err := render(Config{Location: "/", ServerTemplate: "app-{version}:80"}, "checkout", "production", desired)
	require.NoError(t, err)
	require.Contains(t, string(f.server), "return 503")
	require.NotContains(t, string(f.http), "upstream")
}

func TestRenderRejectsWhatNginxCannotExpress(t *testing.T) {
	t.Parallel()
	cfg := Config{Location: "/", Servers: map[string][]string{"v1": {"a:1"}, "v2": {"b:1"}}}
	base := func() plan.DesiredState { return weights(100, 0) }
	tests := []struct {
		name   string
		change func(*plan.DesiredState)
		want   string
	}{
		{"cohort to a stopped version", func(d *plan.DesiredState) {
			d.Versions[1].Instances = 0
			d.Cohorts = []plan.CohortRule{{Name: "arm_b", Version: "v2", Match: plan.Match{Kind: plan.MatchAll}}}
		}, `cohort "arm_b" routes users to version v2, which runs no instances`},
		{"header value with a quote", func(d *plan.DesiredState) {
			d.Cohorts = []plan.CohortRule{{Name: "staff", Version: "v2", Match: plan.Match{Kind: plan.MatchHeader, Key: "X-Group", Values: []string{`a"b`}}}}
		}, `cohort "staff" matches header value "a\"b"`},
		{"cookie with a dash", func(d *plan.DesiredState) {
			d.Cohorts = []plan.CohortRule{{Name: "beta", Version: "v2", Match: plan.Match{Kind: plan.MatchCookie, Key: "beta-user", Values: []string{"1"}}}}
		}, `cohort "beta" matches cookie "beta-user"`},
		{"hash key not a name", func(d *plan.DesiredState) {
			d.Cohorts = []plan.CohortRule{{Name: "b", Version: "v2", Match: plan.Match{Kind: plan.MatchHash, Key: "user.id", Percent: 10}}}
		}, `cohort "b" hashes key "user.id"; name it in hash_keys`},
		{"mirror from a version without all traffic", func(d *plan.DesiredState) {
			d.Versions[0].Weight, d.Versions[1].Weight = 50, 50
			d.Mirror = &plan.Mirror{From: "v1", To: "v2", Percent: 10}
		}, "the nginx driver mirrors only from a version serving all traffic, and v1 does not"},
		{"mirror to a stopped version", func(d *plan.DesiredState) {
			d.Versions[1].Instances = 0
			d.Mirror = &plan.Mirror{From: "v1", To: "v2", Percent: 10}
		}, "mirror copies traffic to version v2, which runs no instances"},
		{"version without servers", func(d *plan.DesiredState) {
			d.Versions[1].Version = "v3"
		}, "no servers are configured for version v3: add it to servers or set server_template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := base()
			tt.change(&d)
			_, err := render(cfg, "checkout", "production", d)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestApplyRefusesBadRequestsBeforeTouchingAnything(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "started")
	raw, err := json.Marshal(map[string]any{
		"type": "nginx", "dir": dir, "server_template": "app-{version}:80",
		"start_command": "touch " + marker + "-{version}", "test_command": "true", "reload_command": "true",
	})
	require.NoError(t, err)
	d := newDriver(t)
	ctx := context.Background()

	bad := weights(60, 30)
	err = d.Apply(ctx, request(raw, 1, 1, bad))
	require.ErrorIs(t, err, driver.ErrPermanent)
	require.ErrorContains(t, err, "weights add up to 90, want 100")

	err = d.Apply(ctx, request(json.RawMessage(`{"type":"nginx"}`), 1, 1, weights(100, 0)))
	require.ErrorIs(t, err, driver.ErrPermanent)
	var ce *driver.ConfigError
	require.ErrorAs(t, err, &ce)

	// A file the driver did not write is never overwritten.
	require.NoError(t, os.WriteFile(filepath.Join(dir, HTTPFile), []byte("upstream legacy { server 10.0.0.1:80; }\n"), 0o644))
	err = d.Apply(ctx, request(raw, 1, 1, weights(100, 0)))
	require.ErrorIs(t, err, driver.ErrPermanent)
	require.ErrorContains(t, err, "was not written by Flightdeck")
	content, err := os.ReadFile(filepath.Join(dir, HTTPFile))
	require.NoError(t, err)
	require.Equal(t, "upstream legacy { server 10.0.0.1:80; }\n", string(content))
	_, err = os.Stat(marker + "-v1")
	require.ErrorIs(t, err, os.ErrNotExist, "no command ran")

	// Empty files, as created before the first apply, are taken over; the
	// directory then belongs to this environment.
	require.NoError(t, os.WriteFile(filepath.Join(dir, HTTPFile), nil, 0o644))
	require.NoError(t, d.Apply(ctx, request(raw, 1, 1, weights(100, 0))))
	_, err = os.Stat(marker + "-v1")
	require.NoError(t, err, "the start command ran for v1")

	other := request(raw, 2, 1, weights(100, 0))
	other.Environment = "staging"
	err = newDriver(t).Apply(ctx, other)
	require.ErrorIs(t, err, driver.ErrPermanent)
	require.ErrorContains(t, err, "holds the nginx files of checkout/production")
}

func TestFailedStopCommandRunsAgainOnRetry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "commands.log")
	once := filepath.Join(dir, "failed-once")
	raw, err := json.Marshal(map[string]any{
		"type": "nginx", "dir": dir, "server_template": "app-{version}:80",
		"test_command": "true", "reload_command": "true",
		// The first stop fails, as a deploy system that is briefly down would.
		"stop_command": "if [ ! -f " + once + " ]; then touch " + once + "; echo deploy system unavailable; exit 1; fi; echo stop {version} >> " + log,
	})
	require.NoError(t, err)
	d := newDriver(t)
	ctx := context.Background()
	require.NoError(t, d.Apply(ctx, request(raw, 1, 1, weights(100, 0))))

	switched := weights(0, 100)
	switched.Versions[0].Instances = 0
	err = d.Apply(ctx, request(raw, 1, 2, switched))
	require.ErrorContains(t, err, "stop_command for version v1 (0 instances) failed")
	require.ErrorContains(t, err, "deploy system unavailable")
	require.NotErrorIs(t, err, driver.ErrPermanent)
	content, err := os.ReadFile(filepath.Join(dir, HTTPFile))
	require.NoError(t, err)
	require.Contains(t, string(content), `"generation":2`, "traffic moved before the stop")

	// The retry of the same generation runs the stop again.
	require.NoError(t, d.Apply(ctx, request(raw, 1, 2, switched)))
	content, err = os.ReadFile(log)
	require.NoError(t, err)
	require.Equal(t, "stop v1\n", string(content))

	// Delivered once more, the generation is done and nothing runs.
	require.NoError(t, d.Apply(ctx, request(raw, 1, 2, switched)))
	content, err = os.ReadFile(log)
	require.NoError(t, err)
	require.Equal(t, "stop v1\n", string(content))
}
