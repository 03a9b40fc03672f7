package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/apiclient"
)

// contractTransport checks every exchange the generated client makes
// against the OpenAPI document, so the client and the server are held to
// the same description.
type contractTransport struct {
	t *testing.T
}

func (ct contractTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	x := exchange{method: req.Method, path: req.URL.RequestURI(), body: string(body), header: req.Header.Clone()}
	checkContract(ct.t, x, resp.StatusCode, resp.Header, respBody)
	return resp, nil
}

func TestGeneratedClientDrivesTheAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a := restSetup(t)
	srv := httptest.NewServer(a.handler)
	t.Cleanup(srv.Close)
	client, err := apiclient.NewClientWithResponses(srv.URL, apiclient.WithHTTPClient(&http.Client{Transport: contractTransport{t: t}}))
	require.NoError(t, err)

	doc, err := client.GetOpenAPIDocumentWithResponse(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, doc.StatusCode())
	require.Equal(t, "3.0.3", (*doc.YAML200)["openapi"])

	created, err := client.CreateAppWithResponse(ctx, apiclient.CreateAppRequest{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, created.StatusCode(), string(created.Body))
	require.Equal(t, "checkout", created.JSON201.Slug)
	require.Empty(t, created.JSON201.Description)

	again, err := client.CreateAppWithResponse(ctx, apiclient.CreateAppRequest{Slug: "checkout", Name: "Checkout"})
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, again.StatusCode())
	require.Contains(t, *again.ApplicationproblemJSON409.Detail, "exists already")

	bad, err := client.CreateAppWithResponse(ctx, apiclient.CreateAppRequest{Slug: "Not A Slug", Name: "x"})
	require.NoError(t, err)
	require.Equal(t, http.StatusUnprocessableEntity, bad.StatusCode())
	require.Equal(t, "slug", (*bad.ApplicationproblemJSON422.Errors)[0].Field)

	// A platform team describes the fleet with the typed simulator config.
	instances, rate := 12, 0.05
	driver, err := json.Marshal(apiclient.SimulatorDriverConfig{
		Type: apiclient.SimulatorDriverConfigTypeSimulator, Instances: &instances,
		Faults: &map[string]apiclient.SimulatorFault{"v2": {ErrorRate: &rate}},
	})
	require.NoError(t, err)
	tier := apiclient.Production
	env, err := client.CreateEnvironmentWithResponse(ctx, "checkout", apiclient.CreateEnvironmentRequest{
		Name: "production", Tier: &tier, Driver: ptr(apiclient.DriverConfig(driver)),
		Thresholds: ptr(apiclient.Thresholds(`{"error_rate_pp": 1}`)),
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, env.StatusCode(), string(env.Body))
	require.Equal(t, "/api/v1/apps/checkout/environments/production", *env.Headers201.Location)
	require.JSONEq(t, string(driver), string(env.JSON201.Driver))
	etag := *env.Headers201.ETag
	require.Equal(t, `"1"`, etag)

	// An update based on the version read applies once; the same update
	// again is refused with the environment as it is now.
	policy := apiclient.FailurePolicyPause
	change := apiclient.UpdateEnvironmentRequest{FailurePolicy: &policy}
	updated, err := client.UpdateEnvironmentWithResponse(ctx, "checkout", "production", &apiclient.UpdateEnvironmentParams{IfMatch: &etag}, change)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, updated.StatusCode(), string(updated.Body))
	require.Equal(t, apiclient.FailurePolicyPause, updated.JSON200.FailurePolicy)
	require.Equal(t, int64(2), updated.JSON200.Version)

	stale, err := client.UpdateEnvironmentWithResponse(ctx, "checkout", "production", &apiclient.UpdateEnvironmentParams{IfMatch: &etag}, change)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, stale.StatusCode())
	require.Equal(t, int64(2), stale.ApplicationproblemJSON409.Current.Version)

	list, err := client.ListEnvironmentsWithResponse(ctx, "checkout", nil)
	require.NoError(t, err)
	require.Len(t, list.JSON200.Items, 1)
	require.Nil(t, list.JSON200.NextCursor)

	inUse, err := client.DeleteAppWithResponse(ctx, "checkout")
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, inUse.StatusCode())

	_, err = client.CreateAppWithResponse(ctx, apiclient.CreateAppRequest{Slug: "search", Name: "Search"})
	require.NoError(t, err)
	gone, err := client.DeleteAppWithResponse(ctx, "search")
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, gone.StatusCode())
	missing, err := client.GetAppWithResponse(ctx, "search")
	require.NoError(t, err)
	require.Equal(t, http.StatusNotFound, missing.StatusCode())
	require.Contains(t, *missing.ApplicationproblemJSON404.Detail, `"search"`)

	limit := 1
	apps, err := client.ListAppsWithResponse(ctx, &apiclient.ListAppsParams{Limit: &limit})
	require.NoError(t, err)
	require.Equal(t, []string{"checkout"}, []string{apps.JSON200.Items[0].Slug})
	require.Nil(t, apps.JSON200.NextCursor)
}

func ptr[T any](v T) *T { return &v }
