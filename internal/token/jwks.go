package token

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
)

// JWK is a public key as RFC 7517 (and RFC 8037 for Ed25519) writes it.
type JWK struct {
	KeyType string `json:"kty"`
	Curve   string `json:"crv"`
	X       string `json:"x"`
	KeyID   string `json:"kid"`
	Use     string `json:"use"`
	Alg     string `json:"alg"`
}

// JWKS is the JSON of the set of public keys that verify this Codec's
// tokens, for services that verify them themselves, and false for a Codec
// with a shared secret (HS256), which is never published.
func (c *Codec) JWKS() ([]byte, bool) {
	public, ok := c.verifyKey.(ed25519.PublicKey)
	if !ok {
		return nil, false
	}
	set := struct {
		Keys []JWK `json:"keys"`
	}{[]JWK{{KeyType: "OKP", Curve: "Ed25519", X: base64.RawURLEncoding.EncodeToString(public),
		KeyID: c.keyID, Use: "sig", Alg: c.method.Alg()}}}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err) // a struct of strings always marshals
	}
	return b, true
}
