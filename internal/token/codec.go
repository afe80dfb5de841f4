// Package token issues and verifies the plugin's own credentials: short-lived
// access tokens (JWTs signed with Ed25519 or HS256) that the gate checks on
// every proxied request, and opaque refresh tokens of which only a hash is
// stored. It also keeps the Ed25519 signing key in shared storage so every
// node of a cluster signs with the same key, and provides a cache of already
// verified tokens so the hot path can skip the signature check.
package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// Issuer is the "iss" claim of every access token; Verify refuses any other.
const Issuer = "wxauth"

// MaxTokenLength bounds what Verify is willing to parse. Our own tokens are a
// few hundred bytes; refusing longer input up front keeps hostile requests
// from making us base64- and JSON-decode arbitrarily large strings.
const MaxTokenLength = 4096

// issuedAtLeeway tolerates clock skew between the node that issued a token
// and the node verifying it. It applies to "iat" only: expiry is checked
// strictly (see Verify) so that a token and its cache entry die together.
const issuedAtLeeway = time.Minute

// keyIDLength is the number of base64url characters kept from the key hash
// (66 bits): plenty to tell keys apart during a rotation, and short.
const keyIDLength = 11

// The three outcomes callers branch on. Verify always returns an error for
// which errors.Is matches exactly one of them.
var (
	// ErrMalformed: not a JWT, too long, bad base64/JSON, or a required
	// claim (sub, sid, app, exp, iat) is missing.
	ErrMalformed = errors.New("token: malformed")
	// ErrInvalid: the token is well formed but not ours or not acceptable:
	// bad signature, wrong algorithm, unknown key id, wrong issuer, or
	// issued in the future.
	ErrInvalid = errors.New("token: invalid")
	// ErrExpired: the token was ours and valid, but its "exp" has passed.
	ErrExpired = errors.New("token: expired")
)

// Detailed causes, built once: a rejected token then costs no allocation for
// its error, and no error text can ever echo the token, a key, or any other
// attacker-controlled input (such as the "alg" header).
var (
	errEmpty          = fmt.Errorf("%w: empty", ErrMalformed)
	errTooLong        = fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLength)
	errEncoding       = fmt.Errorf("%w: not a compact JWS (three base64url segments of JSON)", ErrMalformed)
	errMissingClaim   = fmt.Errorf("%w: a required claim (sub, sid, app, exp, iat) is missing", ErrMalformed)
	errAlgorithm      = fmt.Errorf("%w: signing algorithm not accepted", ErrInvalid)
	errUnknownKeyID   = fmt.Errorf("%w: unknown key id", ErrInvalid)
	errSignature      = fmt.Errorf("%w: signature does not verify", ErrInvalid)
	errIssuer         = fmt.Errorf("%w: issuer is not %q", ErrInvalid, Issuer)
	errIssuedInFuture = fmt.Errorf("%w: issued in the future", ErrInvalid)
	errNotYetValid    = fmt.Errorf("%w: not valid yet", ErrInvalid)
	errClaims         = fmt.Errorf("%w: claims rejected", ErrInvalid)
)

// accessClaims is the JSON payload of an access token.
type accessClaims struct {
	SessionID string `json:"sid"`
	AppID     string `json:"app"`
	UnionID   string `json:"uid,omitempty"`
	Source    string `json:"src"`
	Nickname  string `json:"nick,omitempty"`
	AvatarURL string `json:"ava,omitempty"`
	Phone     string `json:"phn,omitempty"`
	jwt.RegisteredClaims
}

// Codec signs and verifies access tokens with exactly one algorithm and one
// key. It is safe for concurrent use and must not be copied.
type Codec struct {
	method     jwt.SigningMethod
	signingKey any // ed25519.PrivateKey or []byte, as the jwt signer expects
	verifyKey  any // ed25519.PublicKey or []byte, as the jwt verifier expects
	keyID      string
	// keyFunc is c.verificationKey bound once, so Verify does not allocate a
	// method value per call.
	keyFunc jwt.Keyfunc
	// verifiers pools parsers together with the claims they decode into. A
	// jwt.Parser reads the time through a func() with no arguments, so
	// honouring Verify's now while reusing parsers needs one parser per
	// concurrent caller; a pool gives exactly that.
	verifiers sync.Pool
}

// verifier is one pooled parser and the state its callbacks read.
type verifier struct {
	parser *jwt.Parser
	now    time.Time
	claims accessClaims
}

func (v *verifier) currentTime() time.Time { return v.now }

// NewEd25519Codec returns a Codec that signs with alg EdDSA. Its key id is
// derived from the public key, so every node holding the same key agrees on
// it. It panics if key is not a 64-byte Ed25519 private key, which can only be
// a programming error (LoadOrCreateEd25519 always returns a valid key).
func NewEd25519Codec(key ed25519.PrivateKey) *Codec {
	if len(key) != ed25519.PrivateKeySize {
		panic("token: NewEd25519Codec needs a 64-byte ed25519.PrivateKey")
	}
	public := key.Public().(ed25519.PublicKey)
	return newCodec(jwt.SigningMethodEdDSA, key, public, keyIDFromBytes(public))
}

// NewHS256Codec returns a Codec that signs with alg HS256 using secret, which
// must be at least 32 bytes (the HMAC-SHA256 output size; shorter secrets
// weaken the MAC). The secret is copied. Its key id is a hash of the secret
// under a fixed prefix, so it identifies the key without revealing it.
func NewHS256Codec(secret []byte) (*Codec, error) {
	if len(secret) < sha256.Size {
		return nil, errors.New("token: signing_key must be at least 32 bytes")
	}
	key := append([]byte(nil), secret...)
	kid := keyIDFromBytes(append([]byte("wxauth-kid|"), key...))
	return newCodec(jwt.SigningMethodHS256, key, key, kid), nil
}

func newCodec(method jwt.SigningMethod, signingKey, verifyKey any, keyID string) *Codec {
	c := &Codec{
		method:     method,
		signingKey: signingKey,
		verifyKey:  verifyKey,
		keyID:      keyID,
	}
	c.keyFunc = c.verificationKey
	validMethods := []string{method.Alg()}
	c.verifiers.New = func() any {
		v := &verifier{}
		v.parser = jwt.NewParser(
			jwt.WithValidMethods(validMethods),
			jwt.WithIssuer(Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(issuedAtLeeway),
			jwt.WithTimeFunc(v.currentTime),
			// Only the canonical encoding of a token is accepted, so one
			// token cannot be presented under many spellings.
			jwt.WithStrictDecoding(),
		)
		return v
	}
	return c
}

// keyIDFromBytes is base64url-no-pad(sha256(b)) cut to keyIDLength.
func keyIDFromBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])[:keyIDLength]
}

// KeyID is the "kid" header of tokens this Codec issues and accepts.
func (c *Codec) KeyID() string { return c.keyID }

// Algorithm is the JWS "alg" this Codec issues and accepts: "EdDSA" or "HS256".
func (c *Codec) Algorithm() string { return c.method.Alg() }

// Issue signs an access token for id, valid from now for ttl. Times are
// whole seconds (JWT NumericDate): "iat" is now rounded down, "exp" is
// now+ttl rounded up, so the token lives at least ttl; the returned expiry
// is the exact "exp" written into the token. id must carry OpenID, SessionID and
// AppID, because Verify refuses tokens without them.
func (c *Codec) Issue(id identity.Identity, now time.Time, ttl time.Duration) (token string, expires time.Time, err error) {
	if id.OpenID == "" || id.SessionID == "" || id.AppID == "" {
		return "", time.Time{}, errors.New("token: identity needs OpenID, SessionID and AppID")
	}
	if ttl < time.Second {
		// Anything shorter would round to a token that expires as it is issued.
		return "", time.Time{}, fmt.Errorf("token: ttl %v is shorter than one second", ttl)
	}
	issuedAt := jwt.NewNumericDate(now)
	// "exp" has one-second precision. Rounded up, a token lives at least
	// ttl: rounded down (as NumericDate does), a 1s token could expire a
	// millisecond after it was issued, and every token would live up to a
	// second less than the expires_in its answer says.
	expiresAt := jwt.NewNumericDate(ceilSecond(now.Add(ttl)))
	claims := &accessClaims{
		SessionID: id.SessionID,
		AppID:     id.AppID,
		UnionID:   id.UnionID,
		Source:    id.Source,
		Nickname:  id.Nickname,
		AvatarURL: id.AvatarURL,
		Phone:     id.Phone,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   id.OpenID,
			IssuedAt:  issuedAt,
			ExpiresAt: expiresAt,
		},
	}
	t := jwt.NewWithClaims(c.method, claims)
	t.Header["kid"] = c.keyID
	token, err = t.SignedString(c.signingKey)
	if err != nil {
		// jwt signing errors describe the key type, never the key itself.
		return "", time.Time{}, fmt.Errorf("token: signing access token: %w", err)
	}
	return token, expiresAt.Time, nil
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if down := t.Truncate(time.Second); down.Before(t) {
		return down.Add(time.Second)
	}
	return t
}

// Verify checks token at time now and returns the identity it asserts and
// when it expires. Every failure matches exactly one of ErrMalformed,
// ErrInvalid or ErrExpired under errors.Is; error texts never contain the
// token or the key.
func (c *Codec) Verify(token string, now time.Time) (identity.Identity, time.Time, error) {
	return c.verify(token, now, false)
}

// VerifyIgnoringExpiry is Verify for a token that may have expired: every
// check but the expiry's. Logout takes it, so that a user whose access
// token has expired can still end the session it belongs to; nothing else
// may, since an expired token proves nothing about now.
func (c *Codec) VerifyIgnoringExpiry(token string, now time.Time) (identity.Identity, time.Time, error) {
	return c.verify(token, now, true)
}

func (c *Codec) verify(token string, now time.Time, allowExpired bool) (identity.Identity, time.Time, error) {
	if token == "" {
		return identity.Identity{}, time.Time{}, errEmpty
	}
	if len(token) > MaxTokenLength {
		return identity.Identity{}, time.Time{}, errTooLong
	}
	// encoding/base64 skips CR and LF even in strict mode, so without this
	// check one token could be presented under many spellings (each its own
	// entry in the gate's cache), despite WithStrictDecoding below.
	if strings.ContainsAny(token, "\r\n") {
		return identity.Identity{}, time.Time{}, errEncoding
	}

	v := c.verifiers.Get().(*verifier)
	defer func() {
		// Drop the decoded claims so the pool does not keep personal data
		// (phone, nickname) alive, and so the next Verify starts clean:
		// json.Unmarshal leaves fields absent from the payload untouched.
		v.claims = accessClaims{}
		v.now = time.Time{}
		c.verifiers.Put(v)
	}()
	v.now = now

	parsed, err := v.parser.ParseWithClaims(token, &v.claims, c.keyFunc)
	if err != nil {
		// The parser checks the signature before the claims, so an expired
		// token's claims are signed ones.
		if err := c.classify(err, parsed, &v.claims); err != ErrExpired || !allowExpired {
			return identity.Identity{}, time.Time{}, err
		}
	}

	claims := &v.claims
	if claims.Subject == "" || claims.SessionID == "" || claims.AppID == "" || claims.IssuedAt == nil || claims.ExpiresAt == nil {
		return identity.Identity{}, time.Time{}, errMissingClaim
	}
	// The parser allowed issuedAtLeeway on "exp" as well; we do not.
	expires := claims.ExpiresAt.Time
	if !now.Before(expires) && !allowExpired {
		return identity.Identity{}, time.Time{}, ErrExpired
	}
	return identity.Identity{
		SessionID: claims.SessionID,
		AppID:     claims.AppID,
		OpenID:    claims.Subject,
		UnionID:   claims.UnionID,
		Source:    claims.Source,
		Nickname:  claims.Nickname,
		AvatarURL: claims.AvatarURL,
		Phone:     claims.Phone,
	}, expires, nil
}

// verificationKey is the jwt.Keyfunc. The parser has already enforced the
// algorithm, so all that is left is to make sure the token names our key.
func (c *Codec) verificationKey(t *jwt.Token) (any, error) {
	if kid, _ := t.Header["kid"].(string); kid != c.keyID {
		return nil, errUnknownKeyID
	}
	return c.verifyKey, nil
}

// classify maps a jwt parse error onto one of our prebuilt errors. When
// several claim checks fail at once, the most serious reason wins: a token
// that is not acceptable is reported as invalid, not merely expired.
func (c *Codec) classify(err error, parsed *jwt.Token, claims *accessClaims) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errEncoding
	case errors.Is(err, errUnknownKeyID):
		return errUnknownKeyID
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// "alg" missing or naming no known method.
		return errAlgorithm
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		// The parser reports a disallowed "alg" (including "none") under
		// the same sentinel as a bad signature; tell them apart.
		if parsed == nil || parsed.Method == nil || parsed.Method.Alg() != c.method.Alg() {
			return errAlgorithm
		}
		return errSignature
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errIssuer
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errIssuedInFuture
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// Required by the parser: "iss" and "exp". No issuer means the
		// token is not ours; no expiry means it is incomplete.
		if claims.Issuer != Issuer {
			return errIssuer
		}
		return errMissingClaim
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	default:
		return errClaims
	}
}
