package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-feature/go-sdk-contrib/providers/ofrep"
	"github.com/open-feature/go-sdk/openfeature"
	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/flags"
)

// These tests evaluate Flightdeck's flags the way a service does: through
// the OpenFeature Go SDK and its OFREP provider, over HTTP.

// ofrepClient serves f over a real listener and returns an OpenFeature
// client whose provider presents token, under a domain of its own so that
// tests running in parallel do not share a provider.
func ofrepClient(t *testing.T, f *ofrepFixture, token string, opts ...ofrep.Option) *openfeature.Client {
	t.Helper()
	srv := httptest.NewServer(f.e)
	t.Cleanup(srv.Close)
	opts = append([]ofrep.Option{ofrep.WithBearerToken(token), ofrep.WithTimeout(5 * time.Second)}, opts...)
	domain := "flightdeck-" + t.Name()
	require.NoError(t, openfeature.SetNamedProviderAndWait(domain, ofrep.NewProvider(srv.URL, opts...)))
	return openfeature.NewClient(domain)
}

func TestOpenFeatureSDKBooleanFlag(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	client := ofrepClient(t, f, f.checkoutProd)
	ctx := context.Background()

	beta, err := client.BooleanValueDetails(ctx, "new-checkout", false, openfeature.NewEvaluationContext("user-7", map[string]any{"plan": "beta"}))
	require.NoError(t, err)
	require.True(t, beta.Value)
	require.Equal(t, openfeature.TargetingMatchReason, beta.Reason)
	require.Equal(t, "on", beta.Variant)
	rule, err := beta.FlagMetadata.GetString("rule")
	require.NoError(t, err)
	require.Equal(t, "beta-plan", rule)

	free, err := client.BooleanValueDetails(ctx, "new-checkout", true, openfeature.NewEvaluationContext("user-7", map[string]any{"plan": "free"}))
	require.NoError(t, err)
	require.False(t, free.Value, "the flag's default variant, not the caller's default")
	require.Equal(t, openfeature.DefaultReason, free.Reason)
}

func TestOpenFeatureSDKStringFlag(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	client := ofrepClient(t, f, f.checkoutProd)

	d, err := client.StringValueDetails(context.Background(), "button-colour", "#000000", openfeature.NewEvaluationContext("user-42", nil))
	require.NoError(t, err)
	want, variant := "#1f6feb", "blue"
	if flags.Bucket("button-colour", "", "user-42") >= 5000 {
		want, variant = "#2ea043", "green"
	}
	require.Equal(t, want, d.Value)
	require.Equal(t, variant, d.Variant)
	require.Equal(t, openfeature.SplitReason, d.Reason)
}

func TestOpenFeatureSDKObjectFlag(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	client := ofrepClient(t, f, f.checkoutProd)

	d, err := client.ObjectValueDetails(context.Background(), "checkout-limits", map[string]any{}, openfeature.NewEvaluationContext("user-7", nil))
	require.NoError(t, err)
	require.Equal(t, map[string]any{"max_items": float64(50), "express": false}, d.Value)
	require.Equal(t, "standard", d.Variant)
	require.Equal(t, openfeature.StaticReason, d.Reason)
}

func TestOpenFeatureSDKPercentageRollout(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	client := ofrepClient(t, f, f.checkoutProd)
	ctx := context.Background()

	counts := map[string]int{}
	const users = 300
	for i := range users {
		key := fmt.Sprintf("user-%d", i)
		evalCtx := openfeature.NewEvaluationContext(key, map[string]any{"country": "PT"})
		first, err := client.StringValueDetails(ctx, "button-colour", "", evalCtx)
		require.NoError(t, err)
		again, err := client.StringValueDetails(ctx, "button-colour", "", evalCtx)
		require.NoError(t, err)
		require.Equal(t, first.Value, again.Value, "user %s must keep their variant", key)

		want := "blue"
		if flags.Bucket("button-colour", "", key) >= 5000 {
			want = "green"
		}
		require.Equal(t, want, first.Variant, "user %s is served by their bucket", key)
		counts[first.Variant]++
	}
	require.Len(t, counts, 2, "a 50/50 rollout serves both variants")
	for variant, n := range counts {
		require.InDelta(t, users/2, n, users*0.15, "variant %s got %d of %d users", variant, n, users)
	}

	_, err := client.StringValueDetails(ctx, "button-colour", "#000000", openfeature.NewTargetlessEvaluationContext(nil))
	require.Error(t, err)
	require.Contains(t, err.Error(), string(openfeature.TargetingKeyMissingCode))
}

func TestOpenFeatureSDKKillSwitch(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	client := ofrepClient(t, f, f.checkoutProd)
	ctx := context.Background()
	evalCtx := openfeature.NewEvaluationContext("user-7", nil)

	live := checkoutFlagEntries(true)
	live[3].State.Enabled = true
	f.snapshots.set("checkout", "production", flags.NewSnapshot(live, nil))
	before, err := client.BooleanValueDetails(ctx, "legacy-payments", false, evalCtx)
	require.NoError(t, err)
	require.True(t, before.Value)
	require.Equal(t, "on", before.Variant)

	killed := checkoutFlagEntries(true)
	killed[3].State.Version = live[3].State.Version + 1
	f.snapshots.set("checkout", "production", flags.NewSnapshot(killed, nil))
	// Flightdeck answers a killed flag with reason DISABLED, the off
	// variant and its value; the Go OFREP provider hands the caller its
	// own default for DISABLED, so a service passes the safe value as the
	// default, as it would for any flag.
	after, err := client.BooleanValueDetails(ctx, "legacy-payments", false, evalCtx)
	require.NoError(t, err)
	require.False(t, after.Value, "a killed flag serves its off value")
	require.Equal(t, "off", after.Variant)
	require.Equal(t, openfeature.DisabledReason, after.Reason)
}

func TestOpenFeatureSDKErrors(t *testing.T) {
	t.Parallel()
	f := newOFREPFixture(t)
	ctx := context.Background()
	evalCtx := openfeature.NewEvaluationContext("user-7", nil)

	client := ofrepClient(t, f, f.checkoutProd)
	missing, err := client.BooleanValueDetails(ctx, "old-checkout", true, evalCtx)
	require.Error(t, err)
	require.True(t, missing.Value, "the caller's default")
	require.Equal(t, openfeature.FlagNotFoundCode, missing.ErrorCode)

	t.Run("token without the flags scope", func(t *testing.T) {
		readOnly := ofrepClient(t, f, f.readOnly, ofrep.WithHeader(HeaderFlightdeckApp, "checkout"), ofrep.WithHeader(HeaderFlightdeckEnvironment, "production"))
		d, err := readOnly.BooleanValueDetails(ctx, "new-checkout", true, evalCtx)
		require.Error(t, err)
		require.True(t, d.Value)
		require.Equal(t, openfeature.GeneralCode, d.ErrorCode)
	})
	t.Run("headers choose the environment", func(t *testing.T) {
		staging := ofrepClient(t, f, f.anyEnv, ofrep.WithHeader(HeaderFlightdeckApp, "checkout"), ofrep.WithHeader(HeaderFlightdeckEnvironment, "staging"))
		_, err := staging.BooleanValueDetails(ctx, "half-configured", false, evalCtx)
		require.Error(t, err)
		d, err := staging.BooleanValueDetails(ctx, "new-checkout", true, evalCtx)
		require.NoError(t, err)
		require.False(t, d.Value)
	})
}

// benchmarkFlagEntries returns n flags of every kind: booleans with a
// targeting rule, string rollouts, objects and killed flags.
func benchmarkFlagEntries(n int) []flags.Entry {
	base := checkoutFlagEntries(false)
	entries := make([]flags.Entry, 0, n)
	for i := range n {
		e := base[i%len(base)]
		e.Flag.Key = fmt.Sprintf("%s-%03d", e.Flag.Key, i)
		entries = append(entries, e)
	}
	return entries
}

// BenchmarkOFREPBulk measures bulk evaluation of 100 flags over HTTP, as a
// fleet of client-side SDKs polls it: a request per iteration through a
// real listener, each for another user. It reports evaluations per second
// and the 99th percentile of the request time.
func BenchmarkOFREPBulk(b *testing.B) {
	f := newOFREPFixture(b)
	const flagCount = 100
	snap := flags.NewSnapshot(benchmarkFlagEntries(flagCount), nil)
	require.Empty(b, snap.Errors())
	f.snapshots.set("checkout", "production", snap)
	srv := httptest.NewServer(f.e)
	defer srv.Close()
	client := srv.Client()

	bodies := make([]string, 1000)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"context":{"targetingKey":"user-%d","plan":"%s","country":"PT"}}`, i, []string{"free", "beta"}[i%2])
	}
	post := func(i int) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/ofrep/v1/evaluate/flags", strings.NewReader(bodies[i%len(bodies)]))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+f.checkoutProd)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n == 0 {
			b.Fatalf("bulk evaluation answered %d with %d bytes", resp.StatusCode, n)
		}
	}

	// One checked request first: the answer holds every flag.
	checkReq, _ := http.NewRequest(http.MethodPost, srv.URL+"/ofrep/v1/evaluate/flags", strings.NewReader(bodies[0]))
	checkReq.Header.Set("Authorization", "Bearer "+f.checkoutProd)
	resp, err := client.Do(checkReq)
	require.NoError(b, err)
	var got ofrepBulkResponse
	require.NoError(b, json.NewDecoder(resp.Body).Decode(&got))
	resp.Body.Close()
	require.Len(b, got.Flags, flagCount)

	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	i := 0
	for b.Loop() {
		t0 := time.Now()
		post(i)
		durations = append(durations, time.Since(t0))
		i++
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(durations) == 0 {
		return
	}
	slices.Sort(durations)
	p99 := durations[min(len(durations)-1, len(durations)*99/100)]
	b.ReportMetric(float64(len(durations)*flagCount)/elapsed.Seconds(), "evals/s")
	b.ReportMetric(float64(p99.Microseconds()), "p99-µs/req")
}
