package token

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
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

// successorKeyLabel separates the key that seals a successor from the
// stored hash of the same refresh token: sha256(token) is in storage, the
// sealing key is HMAC-SHA256 keyed by the token itself, and neither can be
// computed from the other.
const successorKeyLabel = "wxauth refresh successor v1"

// SealSuccessor encrypts successor, the refresh token that replaced spent,
// so that only a holder of spent can read it back (OpenSuccessor). A node
// keeps it with the session for the refresh grace: a client whose refresh
// answer was lost presents spent again and gets the same successor, while a
// reader of storage, who has only hashes and this sealed value, cannot log
// in. aad binds the value to its session.
func SealSuccessor(spent, successor, aad string) ([]byte, error) {
	aead, err := successorAEAD(spent)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(successor)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("token: reading random bytes for a nonce: %w", err)
	}
	return aead.Seal(nonce, nonce, []byte(successor), []byte(aad)), nil
}

// ErrNotSealedBy means a sealed successor does not open with the presented
// refresh token: it was sealed by another token, or altered.
var ErrNotSealedBy = errors.New("token: the successor was not sealed by this refresh token")

// OpenSuccessor reverses SealSuccessor.
func OpenSuccessor(spent string, sealed []byte, aad string) (string, error) {
	aead, err := successorAEAD(spent)
	if err != nil {
		return "", err
	}
	if len(sealed) < aead.NonceSize() {
		return "", ErrNotSealedBy
	}
	plain, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(aad))
	if err != nil {
		return "", ErrNotSealedBy
	}
	return string(plain), nil
}

func successorAEAD(spent string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, []byte(spent))
	mac.Write([]byte(successorKeyLabel))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return cipher.NewGCM(block)
}
