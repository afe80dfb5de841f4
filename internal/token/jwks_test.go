package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// The published key verifies the Codec's tokens, as a service that knows
// only the JWKS would do it; a shared secret is never published.
func TestJWKSVerifiesTokens(t *testing.T) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := NewEd25519Codec(key)
	raw, ok := c.JWKS()
	if !ok {
		t.Fatal("an Ed25519 codec published no key")
	}
	var set struct{ Keys []JWK }
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", raw, err)
	}
	k := set.Keys[0]
	if k.KeyType != "OKP" || k.Curve != "Ed25519" || k.Use != "sig" || k.Alg != "EdDSA" || k.KeyID != c.KeyID() {
		t.Errorf("JWK %+v", k)
	}
	x, err := base64.RawURLEncoding.DecodeString(k.X)
	if err != nil || len(x) != ed25519.PublicKeySize {
		t.Fatalf("x: %v (%d bytes)", err, len(x))
	}
	tok, _, err := c.Issue(identity.Identity{OpenID: "o1", SessionID: "s1", AppID: "wx1", Source: "wechat-miniprogram"}, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) { return ed25519.PublicKey(x), nil },
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(Issuer))
	if err != nil || !parsed.Valid || parsed.Header["kid"] != k.KeyID {
		t.Errorf("the token does not verify with the published key: %v (kid %v)", err, parsed.Header["kid"])
	}

	hs, err := NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-test"))
	if err != nil {
		t.Fatal(err)
	}
	if b, ok := hs.JWKS(); ok || b != nil {
		t.Errorf("an HS256 codec published %s", b)
	}
}
