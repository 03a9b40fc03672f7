package auth_test

import (
	"bytes"
	"crypto/sha256"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/flightdeckhq/flightdeck/internal/auth"
)

// scannerPattern is what secret scanners are told Flightdeck tokens look like.
var scannerPattern = regexp.MustCompile(`^fdk_[A-Za-z0-9]{40,}$`)

func TestGeneratedTokensAreRecognisableAndDistinct(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 1000 {
		plaintext, prefix, hash, err := auth.Generate()
		require.NoError(t, err)
		require.Regexp(t, scannerPattern, plaintext)
		require.Len(t, plaintext, len("fdk_")+43, "every token has the same length")
		require.Equal(t, plaintext[:12], prefix)
		sum := sha256.Sum256([]byte(plaintext))
		require.Equal(t, sum[:], hash)
		require.Equal(t, hash, auth.Hash(plaintext))
		require.NoError(t, auth.CheckFormat(plaintext))
		require.False(t, seen[plaintext])
		seen[plaintext] = true
	}
}

func TestGeneratedTokensUseTheWholeAlphabet(t *testing.T) {
	t.Parallel()
	// Leading zeros pad short numbers, so look only at the last characters,
	// which every character of the alphabet should reach quickly.
	var used [256]bool
	for range 2000 {
		plaintext, _, _, err := auth.Generate()
		require.NoError(t, err)
		for i := len(plaintext) - 20; i < len(plaintext); i++ {
			used[plaintext[i]] = true
		}
	}
	for _, c := range []byte("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
		require.True(t, used[c], "character %q never appeared", c)
	}
}

func TestCheckFormat(t *testing.T) {
	t.Parallel()
	hex64 := strings.Repeat("0123456789abcdef", 4)
	for token, ok := range map[string]bool{
		"fdk_" + hex64:                         true, // fdk_$(openssl rand -hex 32)
		"fdk_" + strings.Repeat("a", 40):       true,
		"fdk_" + strings.Repeat("a", 39):       false,
		"fdk_" + strings.Repeat("a", 201):      false,
		"FDK_" + hex64:                         false,
		hex64:                                  false,
		"fdk_" + hex64[:50] + "-" + hex64[:10]: false,
		"fdk_" + hex64 + " ":                   false,
		"":                                     false,
	} {
		err := auth.CheckFormat(token)
		if ok {
			require.NoError(t, err, token)
		} else {
			require.ErrorIs(t, err, auth.ErrTokenFormat, token)
			require.NotContains(t, err.Error(), hex64, "the error must not repeat the secret")
		}
	}
}

func TestMatchesComparesHashes(t *testing.T) {
	t.Parallel()
	plaintext, _, hash, err := auth.Generate()
	require.NoError(t, err)
	require.True(t, auth.Matches(plaintext, hash))
	require.False(t, auth.Matches(plaintext+"x", hash))
	require.False(t, auth.Matches(plaintext, hash[:16]))
	require.False(t, auth.Matches(plaintext, bytes.Repeat([]byte{0}, 32)))
}

func TestPrefixOfShortStrings(t *testing.T) {
	t.Parallel()
	require.Equal(t, "fdk_", auth.Prefix("fdk_"))
	require.Equal(t, "fdk_abcdefgh", auth.Prefix("fdk_abcdefghijkl"))
}

func TestCheckName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"ci", "bootstrap-admin", "GitHub Actions (checkout)", "déploiement", strings.Repeat("n", 100)} {
		require.NoError(t, auth.CheckName(ok), ok)
	}
	for bad, want := range map[string]string{
		"":                       "needs a name",
		strings.Repeat("n", 101): "at most 100",
		" ci":                    "space",
		"ci\n":                   "space",
		"c\ni":                   "one line",
		"ci\x00":                 "one line",
		"\xff":                   "UTF-8",
	} {
		require.ErrorContains(t, auth.CheckName(bad), want, "%q", bad)
	}
}
