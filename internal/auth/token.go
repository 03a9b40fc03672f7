// Package auth holds what Flightdeck knows about API tokens without a
// database: how a token is made and recognised, how it is hashed for
// storage, which scopes exist and what each allows, and the principal a
// request acts as once its token is known.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"unicode"
	"unicode/utf8"
)

// TokenPrefix starts every Flightdeck API token. It makes a leaked token
// recognisable to secret scanners, which can match fdk_[A-Za-z0-9]{40,},
// and to people reading a log or a diff.
const TokenPrefix = "fdk_"

// DisplayPrefixLen is how many leading characters of a token are kept in
// the clear, so that people can tell their tokens apart in lists and logs.
// Eight random characters after "fdk_" identify a token without weakening
// the 200-odd bits that stay secret.
const DisplayPrefixLen = 12

const (
	// secretBytes is the randomness in a generated token: 256 bits, far
	// beyond any guessing, which is also what lets a fast hash stand in for
	// a password hash (see Hash).
	secretBytes = 32
	// secretLen is the length of 32 bytes written in base62.
	secretLen = 43
	// minSecretLen is the shortest secret accepted from outside, such as
	// an operator's FLIGHTDECK_ADMIN_TOKEN: 40 base62 characters carry
	// about 238 bits, and 40 is what scanners are told to look for.
	minSecretLen = 40
	// maxSecretLen keeps absurd header values away from the database.
	maxSecretLen = 200
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrTokenFormat says a string cannot be a Flightdeck API token.
var ErrTokenFormat = fmt.Errorf("an API token is %s followed by %d to %d letters and digits", TokenPrefix, minSecretLen, maxSecretLen)

// Generate returns a new random token, the prefix to display for it and
// the hash to store. The plaintext is shown to its owner once and never
// kept.
func Generate() (plaintext, prefix string, hash []byte, err error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", nil, fmt.Errorf("reading random bytes: %w", err)
	}
	plaintext = TokenPrefix + encodeBase62(b[:])
	return plaintext, Prefix(plaintext), Hash(plaintext), nil
}

// encodeBase62 writes b as a base62 number of exactly secretLen digits,
// padded with leading zeros, so every generated token has the same length.
func encodeBase62(b []byte) string {
	n := new(big.Int).SetBytes(b)
	base := big.NewInt(62)
	digit := new(big.Int)
	out := make([]byte, secretLen)
	for i := secretLen - 1; i >= 0; i-- {
		n.DivMod(n, base, digit)
		out[i] = base62[digit.Int64()]
	}
	return string(out)
}

// CheckFormat reports whether plaintext looks like a Flightdeck API token.
// Generated tokens always pass; the check lets the server refuse a
// mistyped FLIGHTDECK_ADMIN_TOKEN at start and turn away malformed bearer
// tokens without asking the database. The error never repeats the value,
// which may be a secret.
func CheckFormat(plaintext string) error {
	secret, ok := strings.CutPrefix(plaintext, TokenPrefix)
	if !ok || len(secret) < minSecretLen || len(secret) > maxSecretLen {
		return ErrTokenFormat
	}
	for i := 0; i < len(secret); i++ {
		if strings.IndexByte(base62, secret[i]) < 0 {
			return ErrTokenFormat
		}
	}
	return nil
}

// Prefix returns the leading characters of a token that may be shown.
func Prefix(plaintext string) string {
	if len(plaintext) <= DisplayPrefixLen {
		return plaintext
	}
	return plaintext[:DisplayPrefixLen]
}

// Hash returns the SHA-256 digest under which a token is stored and looked
// up. A slow password hash such as bcrypt or argon2 exists to make guessing
// low-entropy passwords expensive; a token carries 256 random bits, so no
// amount of guessing finds it and a slow hash would only add latency to
// every API request. A plain digest is also deterministic, which lets the
// database find a token by an index on its hash instead of trying each.
func Hash(plaintext string) []byte {
	sum := sha256.Sum256([]byte(plaintext))
	return sum[:]
}

// Matches reports whether plaintext hashes to hash, in time independent
// of where the two differ. Looking a token up by its hash in the database
// leaks nothing useful, because a caller cannot steer the digest of what it
// sends; comparing against a hash already in memory should still not
// reveal how much of it a guess got right.
func Matches(plaintext string, hash []byte) bool {
	return subtle.ConstantTimeCompare(Hash(plaintext), hash) == 1
}

// MaxNameLen is the longest token name; the database enforces it too.
const MaxNameLen = 100

// CheckName reports whether name can name a token. Names appear in audit
// records as "token:<name>", so they are kept to one printable line.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("a token needs a name")
	case utf8.RuneCountInString(name) > MaxNameLen:
		return fmt.Errorf("a token name has at most %d characters", MaxNameLen)
	case !utf8.ValidString(name):
		return errors.New("a token name must be valid UTF-8")
	case strings.TrimSpace(name) != name:
		return errors.New("a token name must not start or end with a space")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errors.New("a token name must be printable, on one line")
		}
	}
	return nil
}
