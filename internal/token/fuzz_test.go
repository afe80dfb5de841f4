package token

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// fuzzVerifyAt is when FuzzVerify verifies. The fixture's tokens are issued
// around it: three valid then, one expired, one issued beyond the leeway.
var fuzzVerifyAt = testNow.Add(10 * time.Minute)

// issuedToken is what a token the fixture issued asserts.
type issuedToken struct {
	id      identity.Identity
	expires time.Time
}

// fuzzFixture is built once per process: key generation and signing per
// iteration would cost more than the parsing being fuzzed.
type fuzzFixture struct {
	ed, hs *Codec
	edKey  ed25519.PrivateKey
	secret []byte
	// issued holds, per codec, every token that codec issued, by its exact
	// spelling.
	issued map[*Codec]map[string]issuedToken
}

var fuzzSetup = sync.OnceValue(func() *fuzzFixture {
	// Fixed keys and times make issuing deterministic, so the tokens written
	// into testdata/fuzz/FuzzVerify stay valid for these codecs.
	edKey := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	secret := testSecret('k')
	hs, err := NewHS256Codec(secret)
	if err != nil {
		panic(err)
	}
	fx := &fuzzFixture{
		ed:     NewEd25519Codec(edKey),
		hs:     hs,
		edKey:  edKey,
		secret: secret,
		issued: map[*Codec]map[string]issuedToken{},
	}
	sparse := identity.Identity{SessionID: "s", AppID: "a", OpenID: "o"}
	for _, c := range []*Codec{fx.ed, fx.hs} {
		fx.issued[c] = map[string]issuedToken{}
		fx.issue(c, testIdentity(), testNow, time.Hour)
		fx.issue(c, sparse, testNow, 2*time.Hour)
		fx.issue(c, testIdentity(), testNow.Add(-3*time.Hour), time.Hour)          // expired at fuzzVerifyAt
		fx.issue(c, sparse, fuzzVerifyAt.Add(30*time.Second), time.Hour)           // iat within the leeway
		fx.issue(c, testIdentity(), fuzzVerifyAt.Add(2*time.Minute), 24*time.Hour) // iat beyond the leeway
	}
	return fx
})

func (fx *fuzzFixture) issue(c *Codec, id identity.Identity, at time.Time, ttl time.Duration) {
	tok, exp, err := c.Issue(id, at, ttl)
	if err != nil {
		panic(err)
	}
	fx.issued[c][tok] = issuedToken{id, exp}
}

// tokens returns what c issued, in a stable order.
func (fx *fuzzFixture) tokens(c *Codec) []string {
	return slices.Sorted(maps.Keys(fx.issued[c]))
}

// fuzzSeeds are real tokens and the ways an attacker or a broken client
// mangles them. The forged ones are signed with keys other than the
// fixture's, or with its keys but claims Verify must refuse, so none of
// them may verify.
func (fx *fuzzFixture) fuzzSeeds(t testing.TB) []string {
	var seeds []string
	for _, c := range []*Codec{fx.ed, fx.hs} {
		for _, tok := range fx.tokens(c) {
			parts := strings.Split(tok, ".")
			seeds = append(seeds,
				tok,
				tok[:len(tok)-10],         // truncated signature
				parts[0]+"."+parts[1],     // no signature
				parts[0]+"."+parts[1]+".", // empty signature
				tok+".",                   // extra dot
				"."+tok,                   // leading dot
				strings.Replace(tok, ".", "..", 1),
				tok+strings.Repeat("A", MaxTokenLength),          // huge
				tok+strings.Repeat("A", MaxTokenLength-len(tok)), // exactly the limit
			)
		}
	}

	edTok := fx.tokens(fx.ed)[0]
	hsTok := fx.tokens(fx.hs)[0]
	// reheader swaps tok's header for header, keeping or dropping its
	// signature.
	reheader := func(tok string, header map[string]any, keepSignature bool) string {
		parts := strings.Split(tok, ".")
		raw, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		if !keepSignature {
			parts[2] = ""
		}
		return base64.RawURLEncoding.EncodeToString(raw) + "." + parts[1] + "." + parts[2]
	}
	edPublic := fx.edKey.Public().(ed25519.PublicKey)
	seeds = append(seeds,
		// alg none, keeping the payload, with and without the signature.
		reheader(edTok, map[string]any{"alg": "none", "typ": "JWT", "kid": fx.ed.KeyID()}, true),
		reheader(hsTok, map[string]any{"alg": "none", "kid": fx.hs.KeyID()}, false),
		// Swapped alg: each codec's token claiming the other's algorithm.
		reheader(edTok, map[string]any{"alg": "HS256", "typ": "JWT", "kid": fx.ed.KeyID()}, true),
		reheader(hsTok, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": fx.hs.KeyID()}, true),
		// Algorithm confusion: HS256 keyed with the Ed25519 public key.
		sign(t, jwt.SigningMethodHS256, []byte(edPublic), fx.ed.KeyID(), validClaims()),
		// Right key, claims Verify refuses.
		sign(t, jwt.SigningMethodEdDSA, fx.edKey, fx.ed.KeyID(), jwt.MapClaims{"iss": "someone-else", "sub": "o", "sid": "s", "app": "a", "iat": testNow.Unix(), "exp": testNow.Add(time.Hour).Unix()}),
		sign(t, jwt.SigningMethodHS256, fx.secret, fx.hs.KeyID(), jwt.MapClaims{"iss": Issuer, "sub": "o", "sid": "s", "app": "a", "exp": testNow.Add(time.Hour).Unix()}),
		sign(t, jwt.SigningMethodHS256, fx.secret, fx.hs.KeyID(), jwt.MapClaims{"iss": Issuer, "sub": "o", "sid": "s", "app": "a", "iat": testNow.Unix(), "nbf": testNow.Add(time.Hour).Unix(), "exp": testNow.Add(2 * time.Hour).Unix()}),
		"", ".", "..", "...", "a.b.c", "eyJ.eyJ.",
	)
	return seeds
}

// FuzzVerify feeds arbitrary strings to both codecs' Verify. Nothing may
// panic; a refusal must match exactly one sentinel and return nothing; and
// whatever verifies must be, byte for byte, a token that codec issued, and
// assert what it was issued for: a mutated token never verifies, so never
// to another identity.
func FuzzVerify(f *testing.F) {
	fx := fuzzSetup()
	// The fuzzer can only reach the accepting path from a token that
	// verifies: make sure the fixture has some, and that Verify agrees
	// with what they were issued for.
	for _, c := range []*Codec{fx.ed, fx.hs} {
		accepted := 0
		for tok, want := range fx.issued[c] {
			if id, exp, err := c.Verify(tok, fuzzVerifyAt); err == nil {
				if id != want.id || !exp.Equal(want.expires) {
					f.Fatalf("%s: issued token verifies as %+v, %v", c.Algorithm(), id, exp)
				}
				accepted++
			}
		}
		if accepted != 3 {
			f.Fatalf("%s: %d of the issued tokens verify at fuzzVerifyAt, want 3", c.Algorithm(), accepted)
		}
	}
	for _, s := range fx.fuzzSeeds(f) {
		f.Add(s)
	}
	sentinels := []error{ErrMalformed, ErrInvalid, ErrExpired}
	f.Fuzz(func(t *testing.T, tok string) {
		for _, c := range []*Codec{fx.ed, fx.hs} {
			id, exp, err := c.Verify(tok, fuzzVerifyAt)
			if err != nil {
				n := 0
				for _, s := range sentinels {
					if errors.Is(err, s) {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("%s: error %q matches %d sentinels", c.Algorithm(), err, n)
				}
				if id != (identity.Identity{}) || !exp.IsZero() {
					t.Fatalf("%s: refused token returned %+v, %v", c.Algorithm(), id, exp)
				}
				if len(tok) > 8 && strings.Contains(err.Error(), tok) {
					t.Fatalf("%s: error %q echoes the token", c.Algorithm(), err)
				}
				if len(tok) > MaxTokenLength && !errors.Is(err, ErrMalformed) {
					t.Fatalf("%s: over-long token refused with %v, want ErrMalformed", c.Algorithm(), err)
				}
				continue
			}
			want, ok := fx.issued[c][tok]
			if !ok {
				t.Fatalf("%s: Verify accepted a token it never issued: %q -> %+v", c.Algorithm(), tok, id)
			}
			if id != want.id || !exp.Equal(want.expires) {
				t.Fatalf("%s: Verify = %+v, %v; issued for %+v, %v", c.Algorithm(), id, exp, want.id, want.expires)
			}
		}
	})
}
