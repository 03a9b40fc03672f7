package auth

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/alexedwards/argon2id"
)

// MinPasswordLen is the shortest password Flightdeck accepts.
const MinPasswordLen = 12

// maxPasswordLen bounds the work one sign-in attempt can cause.
const maxPasswordLen = 256

// CheckPasswordRules says what is wrong with a password a person chose, or
// returns nil.
func CheckPasswordRules(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("a password needs at least %d characters (this one has %d)", MinPasswordLen, n)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("a password may have at most %d bytes", maxPasswordLen)
	}
	return nil
}

// HashPassword returns the argon2id hash of the password, encoded with its
// parameters and salt.
func HashPassword(password string) (string, error) {
	if err := CheckPasswordRules(password); err != nil {
		return "", err
	}
	return argon2id.CreateHash(password, argon2id.DefaultParams)
}

// PasswordMatches reports whether the password is the one hashed. An empty
// hash (a user without a password) matches nothing.
func PasswordMatches(password, hash string) (bool, error) {
	if hash == "" || len(password) > maxPasswordLen {
		return false, nil
	}
	ok, err := argon2id.ComparePasswordAndHash(password, hash)
	if err != nil {
		return false, errors.Join(errors.New("reading a stored password hash"), err)
	}
	return ok, nil
}

// GeneratePassword returns a random password for a first administrator.
func GeneratePassword() (string, error) {
	plaintext, _, _, err := Generate()
	if err != nil {
		return "", err
	}
	// The token's random part is base62 with well over 128 bits; 24
	// characters keep about 142 bits.
	return plaintext[len(TokenPrefix) : len(TokenPrefix)+24], nil
}
