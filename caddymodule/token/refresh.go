package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// refreshTokenBytes is the entropy of a refresh token: 256 bits, far beyond
// guessing, encoded as 43 base64url characters.
const refreshTokenBytes = 32

// NewRefreshToken returns a fresh opaque refresh token for the client and the
// hash to store in its place. Storing only the hash means a leaked session
// store does not leak usable refresh tokens.
func NewRefreshToken() (plain string, hash string, err error) {
	var raw [refreshTokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("token: reading random bytes for refresh token: %w", err)
	}
	plain = base64.RawURLEncoding.EncodeToString(raw[:])
	return plain, HashRefreshToken(plain), nil
}

// HashRefreshToken is hex(sha256(plain)): the lookup key for a presented
// refresh token. A plain, unsalted hash is enough because the token is 256
// random bits, not a password.
func HashRefreshToken(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}
