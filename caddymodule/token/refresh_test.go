package token

import (
	"encoding/base64"
	"regexp"
	"testing"
)

func TestNewRefreshToken(t *testing.T) {
	hexSHA256 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	seen := map[string]bool{}
	for range 100 {
		plain, hash, err := NewRefreshToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(plain) != 43 {
			t.Fatalf("token has %d chars, want 43", len(plain))
		}
		raw, err := base64.RawURLEncoding.DecodeString(plain)
		if err != nil || len(raw) != 32 {
			t.Fatalf("token is not 32 bytes of base64url: %v", err)
		}
		if seen[plain] {
			t.Fatal("duplicate refresh token")
		}
		seen[plain] = true
		if !hexSHA256.MatchString(hash) {
			t.Fatalf("hash %q is not hex sha256", hash)
		}
		if hash != HashRefreshToken(plain) {
			t.Fatal("returned hash differs from HashRefreshToken")
		}
	}
}

func TestHashRefreshTokenIsStable(t *testing.T) {
	// sha256("abc"), a published test vector.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashRefreshToken("abc"); got != want {
		t.Fatalf("HashRefreshToken(abc) = %s, want %s", got, want)
	}
}
