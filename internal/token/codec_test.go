package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testIdentity() identity.Identity {
	return identity.Identity{
		SessionID: "sess-1",
		AppID:     "wx1234567890",
		OpenID:    "o-open-id",
		UnionID:   "u-union-id",
		Source:    "wechat-miniprogram",
		Nickname:  "小明",
		AvatarURL: "https://example.com/a.png",
		Phone:     "+8613800000000",
	}
}

func testEd25519Key(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func testSecret(fill byte) []byte {
	return []byte(strings.Repeat(string(rune(fill)), 32))
}

func testHS256Codec(t testing.TB, secret []byte) *Codec {
	t.Helper()
	c, err := NewHS256Codec(secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// segments splits a compact JWS and decodes its header and payload.
func segments(t *testing.T, token string) (header, payload map[string]any, signature string) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments", len(parts))
	}
	decode := func(seg string) map[string]any {
		raw, err := base64.RawURLEncoding.DecodeString(seg)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return decode(parts[0]), decode(parts[1]), parts[2]
}

func encodeSegment(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(raw)
}

// validClaims is the payload Issue would write, as a map so tests can break it.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": Issuer,
		"sub": "o-open-id",
		"sid": "sess-1",
		"app": "wx1234567890",
		"src": "wechat-miniprogram",
		"iat": testNow.Unix(),
		"exp": testNow.Add(time.Hour).Unix(),
	}
}

// sign builds a token with an arbitrary method, key, kid and claims.
func sign(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoundTrip(t *testing.T) {
	codecs := map[string]*Codec{
		"EdDSA": NewEd25519Codec(testEd25519Key(t)),
		"HS256": testHS256Codec(t, testSecret('k')),
	}
	for alg, c := range codecs {
		t.Run(alg, func(t *testing.T) {
			if c.Algorithm() != alg {
				t.Fatalf("Algorithm() = %q, want %q", c.Algorithm(), alg)
			}
			if len(c.KeyID()) != keyIDLength {
				t.Fatalf("KeyID() = %q, want %d chars", c.KeyID(), keyIDLength)
			}
			now := testNow.Add(700 * time.Millisecond) // exp has whole seconds: rounded up, so the token lives at least its ttl
			want := testIdentity()
			token, expires, err := c.Issue(want, now, 15*time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if wantExp := testNow.Add(15*time.Minute + time.Second); !expires.Equal(wantExp) {
				t.Fatalf("Issue expires = %v, want %v", expires, wantExp)
			}

			header, payload, _ := segments(t, token)
			if header["kid"] != c.KeyID() || header["alg"] != alg {
				t.Fatalf("header = %v", header)
			}
			if payload["iss"] != Issuer || payload["sub"] != want.OpenID || payload["iat"] != float64(testNow.Unix()) {
				t.Fatalf("payload = %v", payload)
			}

			got, gotExp, err := c.Verify(token, now.Add(time.Minute))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got != want {
				t.Fatalf("identity = %+v, want %+v", got, want)
			}
			if !gotExp.Equal(expires) {
				t.Fatalf("Verify expires = %v, want %v", gotExp, expires)
			}
		})
	}
}

func TestOptionalClaimsOmitted(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	want := identity.Identity{SessionID: "s", AppID: "a", OpenID: "o", Source: "wechat-miniprogram"}
	token, _, err := c.Issue(want, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := segments(t, token)
	for _, claim := range []string{"uid", "nick", "ava", "phn"} {
		if _, ok := payload[claim]; ok {
			t.Errorf("empty %q claim was written", claim)
		}
	}
	got, _, err := c.Verify(token, testNow)
	if err != nil || got != want {
		t.Fatalf("Verify = %+v, %v; want %+v", got, err, want)
	}
}

// Pooled verifiers must not carry claims from one token into the next.
func TestVerifyDoesNotLeakClaimsBetweenTokens(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	full, _, err := c.Issue(testIdentity(), testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sparse := identity.Identity{SessionID: "s2", AppID: "a2", OpenID: "o2"}
	sparseToken, _, err := c.Issue(sparse, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, _, err := c.Verify(full, testNow); err != nil {
			t.Fatal(err)
		}
		got, _, err := c.Verify(sparseToken, testNow)
		if err != nil || got != sparse {
			t.Fatalf("Verify = %+v, %v; want %+v", got, err, sparse)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := testIdentity()
			id.SessionID = strings.Repeat("s", i+1)
			token, _, err := c.Issue(id, testNow, time.Hour)
			if err != nil {
				t.Error(err)
				return
			}
			for range 50 {
				got, _, err := c.Verify(token, testNow)
				if err != nil || got != id {
					t.Errorf("Verify = %+v, %v; want %+v", got, err, id)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestIssueRefusesIncompleteIdentityAndTinyTTL(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	for _, id := range []identity.Identity{
		{AppID: "a", OpenID: "o"},
		{SessionID: "s", OpenID: "o"},
		{SessionID: "s", AppID: "a"},
	} {
		if _, _, err := c.Issue(id, testNow, time.Hour); err == nil {
			t.Errorf("Issue(%+v) succeeded", id)
		}
	}
	if _, _, err := c.Issue(testIdentity(), testNow, 500*time.Millisecond); err == nil {
		t.Error("Issue with sub-second ttl succeeded")
	}
}

func TestExpired(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	token, expires, err := c.Issue(testIdentity(), testNow, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Verify(token, expires.Add(-time.Second)); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	// Expiry is exact: no clock-skew leeway, unlike "iat".
	for _, at := range []time.Time{expires, expires.Add(time.Second), expires.Add(time.Hour)} {
		if _, _, err := c.Verify(token, at); !errors.Is(err, ErrExpired) {
			t.Errorf("Verify at %v: err = %v, want ErrExpired", at, err)
		}
	}
}

// Logout takes an expired token of ours, and nothing else an expired
// token could be: forged, another key's, another issuer's.
func TestVerifyIgnoringExpiry(t *testing.T) {
	key := testEd25519Key(t)
	c := NewEd25519Codec(key)
	token, expires, err := c.Issue(testIdentity(), testNow, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	later := expires.Add(48 * time.Hour)
	id, exp, err := c.VerifyIgnoringExpiry(token, later)
	if err != nil || id != testIdentity() || !exp.Equal(expires) {
		t.Fatalf("VerifyIgnoringExpiry(expired) = %+v, %v, %v", id, exp, err)
	}
	if _, _, err := c.Verify(token, later); !errors.Is(err, ErrExpired) {
		t.Fatalf("Verify(expired) = %v, want ErrExpired", err)
	}
	other := NewEd25519Codec(testEd25519Key(t))
	forged, _, _ := other.Issue(testIdentity(), testNow, time.Minute)
	tampered := token[:len(token)-3] + "AAA"
	claims := jwt.MapClaims{"sub": "o", "sid": "s", "app": "a", "iss": "someone-else",
		"iat": testNow.Unix(), "exp": testNow.Add(time.Minute).Unix()}
	wrongIssuer := sign(t, jwt.SigningMethodEdDSA, key, c.KeyID(), claims)
	for name, tok := range map[string]string{"another key": forged, "tampered": tampered, "another issuer": wrongIssuer, "garbage": "x.y.z"} {
		if _, _, err := c.VerifyIgnoringExpiry(tok, later); err == nil || errors.Is(err, ErrExpired) {
			t.Errorf("%s: VerifyIgnoringExpiry = %v, want it refused", name, err)
		}
	}
}

func TestNewHS256CodecRejectsShortSecret(t *testing.T) {
	secret := []byte("short-secret-value-0123456789ab") // 31 bytes
	_, err := NewHS256Codec(secret)
	if err == nil {
		t.Fatal("31-byte secret accepted")
	}
	if !strings.Contains(err.Error(), "signing_key must be at least 32 bytes") {
		t.Errorf("error = %q", err)
	}
	if strings.Contains(err.Error(), string(secret)) {
		t.Error("error contains the secret")
	}
}

func TestHS256CopiesSecretAndDerivesStableKeyID(t *testing.T) {
	secret := testSecret('k')
	c := testHS256Codec(t, secret)
	token, _, err := c.Issue(testIdentity(), testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret[0] = 'x' // the caller reusing its buffer must not change the key
	if _, _, err := c.Verify(token, testNow); err != nil {
		t.Fatalf("Verify after caller mutated secret: %v", err)
	}
	if testHS256Codec(t, testSecret('k')).KeyID() != c.KeyID() {
		t.Error("same secret gave different key ids")
	}
	if testHS256Codec(t, testSecret('z')).KeyID() == c.KeyID() {
		t.Error("different secrets gave the same key id")
	}
}

func TestEd25519KeyIDIsPublicKeyHash(t *testing.T) {
	key := testEd25519Key(t)
	c := NewEd25519Codec(key)
	if c.KeyID() != keyIDFromBytes(key.Public().(ed25519.PublicKey)) {
		t.Fatal("kid is not derived from the public key")
	}
	if NewEd25519Codec(key).KeyID() != c.KeyID() {
		t.Fatal("kid not stable")
	}
}

// TestAttacksRefused checks each forged or broken token gets the right error
// class and that no error text leaks the token or a key.
func TestAttacksRefused(t *testing.T) {
	edKey := testEd25519Key(t)
	edCodec := NewEd25519Codec(edKey)
	edPublic := edKey.Public().(ed25519.PublicKey)
	secret := testSecret('k')
	hsCodec := testHS256Codec(t, secret)

	validEd, _, err := edCodec.Issue(testIdentity(), testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	// Tampered payload: change the subject, keep the original signature.
	tampered := func() string {
		parts := strings.Split(validEd, ".")
		_, payload, _ := segments(t, validEd)
		payload["sub"] = "o-someone-else"
		return parts[0] + "." + encodeSegment(t, payload) + "." + parts[2]
	}()

	unsigned := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, edCodec.KeyID(), validClaims())
	// "none" with the kid and an empty signature, as an attacker would send it.
	noneByHand := encodeSegment(t, map[string]string{"alg": "none", "typ": "JWT", "kid": edCodec.KeyID()}) +
		"." + encodeSegment(t, validClaims()) + "."

	withoutClaim := func(name string) jwt.MapClaims {
		claims := validClaims()
		delete(claims, name)
		return claims
	}
	withClaims := func(overrides map[string]any) jwt.MapClaims {
		claims := validClaims()
		for name, value := range overrides {
			claims[name] = value
		}
		return claims
	}
	withClaim := func(name string, value any) jwt.MapClaims {
		return withClaims(map[string]any{name: value})
	}

	randomBytes := make([]byte, 300)
	if _, err := rand.Read(randomBytes); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		codec *Codec
		token string
		want  error
	}{
		{"tampered payload", edCodec, tampered, ErrInvalid},
		{"alg none", edCodec, unsigned, ErrInvalid},
		{"alg none by hand", edCodec, noneByHand, ErrInvalid},
		{"alg none on HS256 codec", hsCodec, sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hsCodec.KeyID(), validClaims()), ErrInvalid},
		{"HS256 with guessed key on Ed25519 codec", edCodec, sign(t, jwt.SigningMethodHS256, testSecret('g'), edCodec.KeyID(), validClaims()), ErrInvalid},
		{"HS256 keyed with Ed25519 public key (alg confusion)", edCodec, sign(t, jwt.SigningMethodHS256, []byte(edPublic), edCodec.KeyID(), validClaims()), ErrInvalid},
		{"HS256 with another secret", hsCodec, sign(t, jwt.SigningMethodHS256, testSecret('g'), hsCodec.KeyID(), validClaims()), ErrInvalid},
		{"EdDSA token on HS256 codec", hsCodec, sign(t, jwt.SigningMethodEdDSA, edKey, hsCodec.KeyID(), validClaims()), ErrInvalid},
		{"HS384 with the right secret", hsCodec, sign(t, jwt.SigningMethodHS384, secret, hsCodec.KeyID(), validClaims()), ErrInvalid},
		{"unknown kid", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, "someotherkid", validClaims()), ErrInvalid},
		{"missing kid", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, "", validClaims()), ErrInvalid},
		{"right key, kid of another codec", hsCodec, sign(t, jwt.SigningMethodHS256, secret, edCodec.KeyID(), validClaims()), ErrInvalid},
		{"wrong iss", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("iss", "someone-else")), ErrInvalid},
		{"missing iss", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("iss")), ErrInvalid},
		{"wrong iss and expired", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaims(map[string]any{"iss": "x", "exp": testNow.Add(-time.Hour).Unix()})), ErrInvalid},
		{"iat far in the future", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("iat", testNow.Add(24*time.Hour).Unix())), ErrInvalid},
		{"iat just beyond leeway", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("iat", testNow.Add(61*time.Second).Unix())), ErrInvalid},
		{"nbf in the future", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("nbf", testNow.Add(time.Hour).Unix())), ErrInvalid},
		{"missing sid", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("sid")), ErrMalformed},
		{"missing sub", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("sub")), ErrMalformed},
		{"missing app", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("app")), ErrMalformed},
		{"missing exp", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("exp")), ErrMalformed},
		{"missing iat", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withoutClaim("iat")), ErrMalformed},
		{"empty sid", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("sid", "")), ErrMalformed},
		{"sid of wrong type", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("sid", 42)), ErrMalformed},
		{"exp of wrong type", edCodec, sign(t, jwt.SigningMethodEdDSA, edKey, edCodec.KeyID(), withClaim("exp", "tomorrow")), ErrMalformed},
		{"empty", edCodec, "", ErrMalformed},
		{"a.b.c", edCodec, "a.b.c", ErrMalformed},
		{"dots", edCodec, "....", ErrMalformed},
		{"two segments", edCodec, strings.Join(strings.Split(validEd, ".")[:2], "."), ErrMalformed},
		{"four segments", edCodec, validEd + ".x", ErrMalformed},
		{"padded base64", edCodec, strings.Replace(validEd, ".", "==.", 1), ErrMalformed},
		// base64 would skip these, letting one token have many spellings.
		{"LF in signature", edCodec, validEd[:len(validEd)-4] + "\n" + validEd[len(validEd)-4:], ErrMalformed},
		{"CR LF after signature", edCodec, validEd + "\r\n", ErrMalformed},
		{"random bytes", edCodec, string(randomBytes), ErrMalformed},
		{"random base64 segments", edCodec, base64.RawURLEncoding.EncodeToString(randomBytes[:30]) + "." + base64.RawURLEncoding.EncodeToString(randomBytes[30:60]) + ".sig", ErrMalformed},
		{"oversized", edCodec, validEd + strings.Repeat("A", MaxTokenLength), ErrMalformed},
		{"oversized by one", edCodec, strings.Repeat("A", MaxTokenLength+1), ErrMalformed},
	}

	secretsThatMustNotLeak := []string{
		string(secret),
		hex.EncodeToString(secret),
		base64.RawURLEncoding.EncodeToString(secret),
		base64.StdEncoding.EncodeToString(edKey),
		base64.RawURLEncoding.EncodeToString(edKey.Seed()),
		hex.EncodeToString(edKey.Seed()),
	}
	allErrors := []error{ErrMalformed, ErrInvalid, ErrExpired}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, exp, err := tc.codec.Verify(tc.token, testNow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range allErrors {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err %v also matches %v", err, other)
				}
			}
			if id != (identity.Identity{}) || !exp.IsZero() {
				t.Errorf("rejected token returned identity %+v, expiry %v", id, exp)
			}
			msg := err.Error()
			if len(tc.token) > 8 && strings.Contains(msg, tc.token) {
				t.Errorf("error contains the token: %q", msg)
			}
			for _, parts := range strings.Split(tc.token, ".") {
				if len(parts) > 16 && strings.Contains(msg, parts) {
					t.Errorf("error contains a token segment: %q", msg)
				}
			}
			for _, s := range secretsThatMustNotLeak {
				if strings.Contains(msg, s) {
					t.Errorf("error contains key material: %q", msg)
				}
			}
		})
	}
}

// A token lives at least its ttl, whatever the fraction of a second it is
// issued at: exp is rounded up, never down.
func TestIssuedTokenLivesAtLeastItsTTL(t *testing.T) {
	c := NewEd25519Codec(testEd25519Key(t))
	for _, frac := range []time.Duration{0, time.Millisecond, 500 * time.Millisecond, 999 * time.Millisecond} {
		now := testNow.Truncate(time.Second).Add(frac)
		token, expires, err := c.Issue(testIdentity(), now, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if expires.Before(now.Add(time.Second)) || !expires.Before(now.Add(2*time.Second)) {
			t.Errorf("issued at +%v for 1s: expires %v after issue, want [1s, 2s)", frac, expires.Sub(now))
		}
		if _, _, err := c.Verify(token, now.Add(999*time.Millisecond)); err != nil {
			t.Errorf("issued at +%v for 1s: refused %v later: %v", frac, 999*time.Millisecond, err)
		}
	}
}
