// Command authsvc is the separate auth service behind Caddy's forward_auth in
// bench/gate.sh: the same check the wxauth gate makes, done out of process.
//
// For every request it reads "Authorization: Bearer <token>" and verifies the
// token exactly as the plugin's token.Codec does, with the same library
// (github.com/golang-jwt/jwt/v5) and the same rules: the one algorithm in use
// (EdDSA or HS256), the "kid" header naming the key, iss "wxauth", exp
// required and strictly in the future, iat within a minute's leeway, strict
// base64, and sub/sid/app present. A good token is answered 200 (no body) with the
// identity headers (X-WX-OPENID, X-WX-APPID, X-WX-UNIONID, X-WX-SOURCE and,
// when present, X-WX-NICKNAME percent-encoded and X-WX-AVATAR), which
// forward_auth's copy_headers puts on the proxied request; anything else is
// answered 401 like the gate's.
//
// Like the gate, it caches tokens it has verified (a sync.Map keyed by the
// whole token, with the token's expiry checked on every hit), so a repeated
// token costs a map lookup, not a signature check. Unlike the gate's bounded
// ristretto cache, this map is unbounded, and there is no revocation check:
// both make authsvc, if anything, slightly cheaper per request than the gate.
//
// The key:
//
//	-alg ed25519 -key-pem <file>   the wxauth Caddy's PKCS#8 PEM signing key
//	                               (<storage>/wxauth/signing/ed25519.pem); the
//	                               public half verifies
//	-alg hs256 -secret-env NAME    the signing_key secret, read from $NAME
package main

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// claims mirrors the plugin's access-token payload.
type claims struct {
	SessionID string `json:"sid"`
	AppID     string `json:"app"`
	UnionID   string `json:"uid,omitempty"`
	Source    string `json:"src"`
	Nickname  string `json:"nick,omitempty"`
	AvatarURL string `json:"ava,omitempty"`
	jwt.RegisteredClaims
}

// header is one identity header to answer.
type header struct{ name, value string }

// entry is a verified token: its headers, computed once, and its expiry.
type entry struct {
	headers []header
	expires time.Time
}

type service struct {
	alg     string
	key     any // ed25519.PublicKey or []byte
	kid     string
	parser  *jwt.Parser
	cache   sync.Map // token -> *entry
	noCache bool
}

const unauthorized = `{"error":"token_invalid","message":"the access token does not verify"}` + "\n"

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	alg := flag.String("alg", "ed25519", "ed25519 or hs256")
	keyPEM := flag.String("key-pem", "", "ed25519: the PKCS#8 PEM private key file")
	secretEnv := flag.String("secret-env", "", "hs256: the environment variable holding the secret")
	noCache := flag.Bool("no-cache", false, "verify the signature on every request")
	flag.Parse()

	s := &service{alg: *alg, noCache: *noCache}
	switch *alg {
	case "ed25519":
		pub, err := loadEd25519(*keyPEM)
		if err != nil {
			log.Fatal(err)
		}
		s.key, s.kid = pub, keyID(pub)
		s.alg = jwt.SigningMethodEdDSA.Alg()
	case "hs256":
		secret := os.Getenv(*secretEnv)
		if len(secret) < 32 {
			log.Fatalf("hs256: $%s must hold a secret of at least 32 bytes", *secretEnv)
		}
		s.key, s.kid = []byte(secret), keyID(append([]byte("wxauth-kid|"), secret...))
		s.alg = jwt.SigningMethodHS256.Alg()
	default:
		log.Fatalf("-alg %q: want ed25519 or hs256", *alg)
	}
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{s.alg}),
		jwt.WithIssuer("wxauth"),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(time.Minute),
		jwt.WithStrictDecoding(),
	)
	log.Printf("authsvc: %s, kid %s, cache %t, on %s", s.alg, s.kid, !s.noCache, *addr)
	log.Fatal(http.ListenAndServe(*addr, s))
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		deny(w)
		return
	}
	now := time.Now()
	if !s.noCache {
		if v, hit := s.cache.Load(raw); hit {
			e := v.(*entry)
			if now.Before(e.expires) {
				allow(w, e)
				return
			}
			s.cache.Delete(raw)
		}
	}
	e, err := s.verify(raw, now)
	if err != nil {
		deny(w)
		return
	}
	if !s.noCache {
		s.cache.Store(raw, e)
	}
	allow(w, e)
}

func (s *service) verify(raw string, now time.Time) (*entry, error) {
	if raw == "" || len(raw) > 4096 {
		return nil, errors.New("bad length")
	}
	var c claims
	_, err := s.parser.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.kid {
			return nil, errors.New("unknown kid")
		}
		return s.key, nil
	})
	if err != nil {
		return nil, err
	}
	if c.Subject == "" || c.SessionID == "" || c.AppID == "" || c.IssuedAt == nil {
		return nil, errors.New("missing claim")
	}
	expires := c.ExpiresAt.Time
	if !now.Before(expires) {
		return nil, errors.New("expired")
	}
	e := &entry{expires: expires}
	add := func(name, value string) {
		if value != "" {
			e.headers = append(e.headers, header{http.CanonicalHeaderKey(name), value})
		}
	}
	add("X-WX-OPENID", c.Subject)
	add("X-WX-APPID", c.AppID)
	add("X-WX-UNIONID", c.UnionID)
	if c.Nickname != "" {
		add("X-WX-NICKNAME", url.PathEscape(c.Nickname))
	}
	add("X-WX-AVATAR", c.AvatarURL)
	add("X-WX-SOURCE", c.Source)
	return e, nil
}

func allow(w http.ResponseWriter, e *entry) {
	h := w.Header()
	for _, x := range e.headers {
		h[x.name] = []string{x.value}
	}
	w.WriteHeader(http.StatusOK)
}

func deny(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("WWW-Authenticate", `Bearer realm="wxauth", error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
	w.Write([]byte(unauthorized))
}

func bearer(auth string) (string, bool) {
	const scheme = "bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(auth[len(scheme):]), true
}

// keyID is the plugin's key id: base64url(sha256(b)) cut to 11 characters.
func keyID(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:11]
}

func loadEd25519(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, errors.New("ed25519: -key-pem is required")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("ed25519: " + path + " holds no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("ed25519: " + path + " is not an Ed25519 key")
	}
	return priv.Public().(ed25519.PublicKey), nil
}
