package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
	"github.com/flightdeckhq/flightdeck/internal/dbtest"
	"github.com/flightdeckhq/flightdeck/internal/store"
)

func adminHash(t *testing.T, st *store.Store) string {
	t.Helper()
	u, err := st.UserByUsername(context.Background(), adminUsername)
	require.NoError(t, err)
	require.True(t, u.IsAdmin)
	h, err := st.PasswordHash(context.Background(), u.ID)
	require.NoError(t, err)
	return h
}

func TestEmbeddedDatabaseGeneratesTheAdminPasswordOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})

	outcome, password, err := ensureAdminPassword(ctx, st, "", true)
	require.NoError(t, err)
	require.Equal(t, adminPasswordGenerated, outcome)
	require.GreaterOrEqual(t, len(password), auth.MinPasswordLen)
	ok, err := auth.PasswordMatches(password, adminHash(t, st))
	require.NoError(t, err)
	require.True(t, ok, "the printed password signs the admin in")

	outcome, again, err := ensureAdminPassword(ctx, st, "", true)
	require.NoError(t, err)
	require.Equal(t, adminPasswordKept, outcome, "a restart never prints or changes the password")
	require.Empty(t, again)
	ok, _ = auth.PasswordMatches(password, adminHash(t, st))
	require.True(t, ok)
}

func TestConfiguredAdminPasswordReplacesTheOldOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.New(t), store.Options{})

	outcome, _, err := ensureAdminPassword(ctx, st, "", false)
	require.NoError(t, err)
	require.Equal(t, adminPasswordMissing, outcome, "an external database gets no generated password")
	require.Empty(t, adminHash(t, st))

	outcome, _, err = ensureAdminPassword(ctx, st, "first password 123", false)
	require.NoError(t, err)
	require.Equal(t, adminPasswordSet, outcome)
	outcome, _, err = ensureAdminPassword(ctx, st, "first password 123", false)
	require.NoError(t, err)
	require.Equal(t, adminPasswordKept, outcome, "the same password is not hashed again at every start")
	outcome, _, err = ensureAdminPassword(ctx, st, "second password 456", true)
	require.NoError(t, err)
	require.Equal(t, adminPasswordSet, outcome)
	ok, _ := auth.PasswordMatches("second password 456", adminHash(t, st))
	require.True(t, ok)
	ok, _ = auth.PasswordMatches("first password 123", adminHash(t, st))
	require.False(t, ok, "the old password no longer works")
}

func TestConfigChecksTheNewSettings(t *testing.T) {
	t.Parallel()
	vars := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return env(m)
	}
	for name, tc := range map[string]struct {
		args []string
		env  func(string) string
		want string
	}{
		"short password":      {nil, vars("FLIGHTDECK_ADMIN_PASSWORD", "short"), "at least 12 characters"},
		"bad interval":        {[]string{"--analysis-interval", "10ms"}, vars(), "invalid analysis interval"},
		"bad demo":            {[]string{"--demo", "maybe"}, vars(), "want auto, on or off"},
		"relative public url": {[]string{"--public-url", "deploy.example.com"}, vars(), "invalid public URL"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parseConfig("serve", tc.args, tc.env, io.Discard)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "short\"", "the password itself is never echoed")
		})
	}
	c, err := parseConfig("serve", []string{"--public-url", "https://deploy.example.com/"}, vars(), nil)
	require.NoError(t, err)
	require.Equal(t, "https://deploy.example.com", c.PublicURL)
	require.True(t, secureCookies(c.PublicURL))
	require.Equal(t, "auto", c.Demo)
	require.Equal(t, "15s", c.AnalysisInterval.String())
}
