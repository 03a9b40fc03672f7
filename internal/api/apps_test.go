package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/api/apigen"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

// seedApps creates apps with the slugs, each named after its slug.
func seedApps(t *testing.T, s *store.Store, slugs ...string) {
	t.Helper()
	for _, slug := range slugs {
		_, err := s.CreateApp(context.Background(), store.NewApp{Slug: slug, Name: strings.ToUpper(slug[:1]) + slug[1:]})
		require.NoError(t, err)
	}
}

func TestAppEndpoints(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		// seed prepares the database before the request.
		seed func(t *testing.T, s *store.Store)
		x    exchange
		// status is the expected status; fields, for a refusal, the fields
		// its problem must name in order.
		status int
		fields []string
		// detail is a part of the problem's detail, for refusals without
		// fields.
		detail string
		// check looks at a successful response.
		check func(t *testing.T, a *restAPI, body []byte)
	}{
		"create": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout", "name": "Checkout", "description": "Takes the money"}`},
			status: http.StatusCreated,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				app, err := a.store.App(context.Background(), "checkout")
				require.NoError(t, err)
				require.Equal(t, "Takes the money", app.Description)
			},
		},
		"create without description": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "a", "name": "A"}`},
			status: http.StatusCreated,
		},
		"create with a taken slug": {
			seed:   func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") },
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout", "name": "Again"}`},
			status: http.StatusConflict,
			detail: `slug "checkout" exists already`,
		},
		"create with an unknown field": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout", "name": "Checkout", "owner": "team-a"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"owner"},
		},
		"create with wrong types": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": 7, "name": null, "description": ["x"]}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug", "name", "description"},
		},
		"create with a bad slug": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "Check_Out", "name": "Checkout"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug"},
		},
		"create with a slug ending in a hyphen": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout-", "name": "Checkout"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug"},
		},
		"create with a slug too long": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: fmt.Sprintf(`{"slug": %q, "name": "Long"}`, strings.Repeat("a", 64))},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug"},
		},
		"create with a blank name and a long description": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: fmt.Sprintf(`{"slug": "checkout", "name": "  ", "description": %q}`, strings.Repeat("x", 2001))},
			status: http.StatusUnprocessableEntity,
			fields: []string{"name", "description"},
		},
		"create with nothing": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug", "name"},
		},
		"create with a body that is not JSON": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout",`},
			status: http.StatusBadRequest,
			detail: "not valid JSON",
		},
		"create with an array": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: `[{"slug": "checkout"}]`},
			status: http.StatusBadRequest,
			detail: "must be a JSON object",
		},
		"create as a form": {
			x: exchange{method: http.MethodPost, path: "/api/v1/apps", body: `slug=checkout`,
				header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
			status: http.StatusUnsupportedMediaType,
		},
		"create too large": {
			x:      exchange{method: http.MethodPost, path: "/api/v1/apps", body: fmt.Sprintf(`{"slug": "a", "name": "A", "description": %q}`, strings.Repeat("x", 1<<20))},
			status: http.StatusRequestEntityTooLarge,
		},
		"get": {
			seed:   func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") },
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps/checkout"},
			status: http.StatusOK,
			check: func(t *testing.T, _ *restAPI, body []byte) {
				require.Contains(t, string(body), `"slug":"checkout"`)
			},
		},
		"get unknown": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps/nope"},
			status: http.StatusNotFound,
			detail: `no app with slug "nope"`,
		},
		"update the name only": {
			seed: func(t *testing.T, s *store.Store) {
				_, err := s.CreateApp(context.Background(), store.NewApp{Slug: "checkout", Name: "Checkout", Description: "Takes the money"})
				require.NoError(t, err)
			},
			x:      exchange{method: http.MethodPatch, path: "/api/v1/apps/checkout", body: `{"name": "Checkout v2"}`},
			status: http.StatusOK,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				app, err := a.store.App(context.Background(), "checkout")
				require.NoError(t, err)
				require.Equal(t, "Checkout v2", app.Name)
				require.Equal(t, "Takes the money", app.Description, "fields left out keep their value")
			},
		},
		"update the description to empty": {
			seed: func(t *testing.T, s *store.Store) {
				_, err := s.CreateApp(context.Background(), store.NewApp{Slug: "checkout", Name: "Checkout", Description: "Takes the money"})
				require.NoError(t, err)
			},
			x:      exchange{method: http.MethodPatch, path: "/api/v1/apps/checkout", body: `{"description": ""}`},
			status: http.StatusOK,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				app, err := a.store.App(context.Background(), "checkout")
				require.NoError(t, err)
				require.Empty(t, app.Description)
			},
		},
		"update the slug": {
			seed:   func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") },
			x:      exchange{method: http.MethodPatch, path: "/api/v1/apps/checkout", body: `{"slug": "pay", "nmae": "Pay"}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"slug", "nmae"},
			check: func(t *testing.T, a *restAPI, _ []byte) {
				_, err := a.store.App(context.Background(), "checkout")
				require.NoError(t, err, "a refused request changes nothing")
			},
		},
		"update with a wrong type": {
			seed:   func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") },
			x:      exchange{method: http.MethodPatch, path: "/api/v1/apps/checkout", body: `{"name": 12}`},
			status: http.StatusUnprocessableEntity,
			fields: []string{"name"},
		},
		"update unknown": {
			x:      exchange{method: http.MethodPatch, path: "/api/v1/apps/nope", body: `{"name": "Nope"}`},
			status: http.StatusNotFound,
		},
		"delete": {
			seed:   func(t *testing.T, s *store.Store) { seedApps(t, s, "checkout") },
			x:      exchange{method: http.MethodDelete, path: "/api/v1/apps/checkout"},
			status: http.StatusNoContent,
			check: func(t *testing.T, a *restAPI, _ []byte) {
				_, err := a.store.App(context.Background(), "checkout")
				require.ErrorIs(t, err, store.ErrNotFound)
			},
		},
		"delete with environments": {
			seed: func(t *testing.T, s *store.Store) {
				app, err := s.CreateApp(context.Background(), store.NewApp{Slug: "checkout", Name: "Checkout"})
				require.NoError(t, err)
				_, err = s.CreateEnvironment(context.Background(), store.Environment{AppID: app.ID, Name: "production"})
				require.NoError(t, err)
			},
			x:      exchange{method: http.MethodDelete, path: "/api/v1/apps/checkout"},
			status: http.StatusConflict,
			detail: "still has environments",
			check: func(t *testing.T, a *restAPI, _ []byte) {
				_, err := a.store.App(context.Background(), "checkout")
				require.NoError(t, err)
			},
		},
		"delete unknown": {
			x:      exchange{method: http.MethodDelete, path: "/api/v1/apps/nope"},
			status: http.StatusNotFound,
		},
		"list with a bad limit": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps?limit=500"},
			status: http.StatusBadRequest,
			fields: []string{"limit"},
		},
		"list with a limit that is not a number": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps?limit=ten"},
			status: http.StatusBadRequest,
			detail: "limit",
		},
		"list with a forged cursor": {
			x:      exchange{method: http.MethodGet, path: "/api/v1/apps?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("DROP TABLE"))},
			status: http.StatusBadRequest,
			fields: []string{"cursor"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := restSetup(t)
			if tc.seed != nil {
				tc.seed(t, a.store)
			}
			rec := a.do(tc.x)
			require.Equal(t, tc.status, rec.Code, rec.Body.String())
			if rec.Code >= 400 {
				p := readProblem(t, rec)
				require.Equal(t, tc.fields, nilIfEmpty(fieldsOf(p)))
				require.Contains(t, p.Detail, tc.detail)
				for _, fe := range p.Errors {
					require.NotEmpty(t, fe.Message, "every field error says what is wrong")
				}
			}
			if tc.check != nil {
				tc.check(t, a, rec.Body.Bytes())
			}
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestCreatedAppIsWhereLocationSays(t *testing.T) {
	t.Parallel()
	a := restSetup(t)
	rec := a.do(exchange{method: http.MethodPost, path: "/api/v1/apps", body: `{"slug": "checkout", "name": "Checkout"}`})
	require.Equal(t, http.StatusCreated, rec.Code)
	created := decode[apigen.App](t, rec)
	require.Equal(t, "/api/v1/apps/checkout", rec.Header().Get("Location"))

	got := decode[apigen.App](t, a.do(exchange{method: http.MethodGet, path: rec.Header().Get("Location")}))
	require.Equal(t, created, got)
	require.Empty(t, got.Description)
	require.False(t, got.CreatedAt.IsZero())
}

func TestAppsArePagedInSlugOrder(t *testing.T) {
	t.Parallel()
	a := restSetup(t)
	seedApps(t, a.store, "search", "checkout", "auth", "payments", "billing")

	var slugs []string
	path := "/api/v1/apps?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5, "paging must end")
		rec := a.do(exchange{method: http.MethodGet, path: path})
		require.Equal(t, http.StatusOK, rec.Code)
		list := decode[apigen.AppList](t, rec)
		require.LessOrEqual(t, len(list.Items), 2)
		for _, app := range list.Items {
			slugs = append(slugs, app.Slug)
		}
		if list.NextCursor == nil {
			require.NotContains(t, rec.Body.String(), "next_cursor", "the last page has no cursor")
			break
		}
		path = "/api/v1/apps?limit=2&cursor=" + *list.NextCursor
	}
	require.Equal(t, []string{"auth", "billing", "checkout", "payments", "search"}, slugs)

	// An exact page ends without a cursor, and an empty list is an empty array.
	list := decode[apigen.AppList](t, a.do(exchange{method: http.MethodGet, path: "/api/v1/apps?limit=5"}))
	require.Len(t, list.Items, 5)
	require.Nil(t, list.NextCursor)
	require.JSONEq(t, `{"items": []}`, restSetup(t).do(exchange{method: http.MethodGet, path: "/api/v1/apps"}).Body.String())
}
