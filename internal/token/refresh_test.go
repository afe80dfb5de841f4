package token

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
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

func TestSealedSuccessorOpensOnlyWithTheSpentToken(t *testing.T) {
	spent, spentHash, _ := NewRefreshToken()
	successor, _, _ := NewRefreshToken()
	sealed, err := SealSuccessor(spent, successor, "sid-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenSuccessor(spent, sealed, "sid-1")
	if err != nil || got != successor {
		t.Fatalf("OpenSuccessor = %q, %v; want the successor", got, err)
	}
	// What storage holds (the hash, the sealed bytes) must not reveal it.
	if strings.Contains(string(sealed), successor) {
		t.Fatal("the successor is stored in the clear")
	}
	other, _, _ := NewRefreshToken()
	for name, try := range map[string]func() (string, error){
		"another token":   func() (string, error) { return OpenSuccessor(other, sealed, "sid-1") },
		"the stored hash": func() (string, error) { return OpenSuccessor(spentHash, sealed, "sid-1") },
		"another session": func() (string, error) { return OpenSuccessor(spent, sealed, "sid-2") },
		"truncated":       func() (string, error) { return OpenSuccessor(spent, sealed[:5], "sid-1") },
		"altered": func() (string, error) {
			bad := append([]byte(nil), sealed...)
			bad[len(bad)-1] ^= 1
			return OpenSuccessor(spent, bad, "sid-1")
		},
	} {
		if got, err := try(); !errors.Is(err, ErrNotSealedBy) || got != "" {
			t.Errorf("%s: OpenSuccessor = %q, %v; want ErrNotSealedBy", name, got, err)
		}
	}
	// Two seals of one successor differ (fresh nonces).
	again, _ := SealSuccessor(spent, successor, "sid-1")
	if string(again) == string(sealed) {
		t.Error("sealing twice gave the same bytes")
	}
}
