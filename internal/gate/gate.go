// Package gate decides whether an access token lets a request through, and
// as whom: the signature (or the cache of tokens verified before), the
// expiry, the app, and the revocations this node knows of. It reads no
// storage and takes no lock on its way: it runs on every proxied request.
//
// The HTTP face (finding the token in a request, removing forged identity
// headers, setting the verified ones) belongs to the Caddy glue, which
// offers it both as the wxauth handler's gate and as a Caddy
// authentication provider.
package gate

import (
	"errors"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// Why a token does not let a request through. Check returns an error that
// errors.Is matches with exactly one of them.
var (
	// ErrInvalid: not a token of ours, malformed, or for an app that is no
	// longer configured.
	ErrInvalid = errors.New("the access token is not valid here")
	// ErrExpired: ours and well formed, but past its expiry.
	ErrExpired = errors.New("the access token has expired")
	// ErrRevoked: its session was logged out or revoked.
	ErrRevoked = errors.New("the access token's session has ended")
)

// Verified is what the gate keeps for a token it has checked, shared by
// every request that carries the token until it expires.
type Verified struct {
	Identity identity.Identity
	Expires  time.Time
	// Headers are the identity headers the upstream gets, built once.
	Headers identity.Headers
	// Extra is what the caller's Prepare made of the identity (once per
	// token, not per request), such as values boxed for placeholders.
	Extra any
}

// Gate checks access tokens. Fill every field but Prepare before use; it is
// safe for concurrent use.
type Gate struct {
	Codec *token.Codec
	// Cache remembers verified tokens; it may be shared by gates whose
	// Codec, ForwardPhone and Prepare are the same.
	Cache       *token.Cache[*Verified]
	Revocations *store.Revocations
	// Known reports whether an app is configured: checked on every
	// request, cached or not, since a reload may have removed it.
	Known        func(appid string) bool
	ForwardPhone bool
	Metrics      *metrics.Metrics
	// Prepare, when set, fills a new Verified's Extra.
	Prepare func(*Verified)
}

// Check verifies a raw access token at now and returns what it asserts.
func (g *Gate) Check(raw string, now time.Time) (*Verified, error) {
	v, err := g.verify(raw, now)
	if err != nil {
		return nil, err
	}
	if !g.Known(v.Identity.AppID) {
		return nil, ErrInvalid
	}
	if g.Revocations.Revoked(v.Identity.SessionID) {
		return nil, ErrRevoked
	}
	return v, nil
}

// verify finds the token in the cache of tokens verified before, or checks
// its signature and claims.
func (g *Gate) verify(raw string, now time.Time) (*Verified, error) {
	if v, ok := g.Cache.Get(raw, now); ok {
		g.Metrics.CacheHits.Inc()
		return v, nil
	}
	g.Metrics.CacheMisses.Inc()
	id, expires, err := g.Codec.Verify(raw, now)
	if errors.Is(err, token.ErrExpired) {
		return nil, ErrExpired
	}
	if err != nil {
		return nil, ErrInvalid
	}
	v := &Verified{Identity: id, Expires: expires, Headers: identity.NewHeaders(id, g.ForwardPhone)}
	if g.Prepare != nil {
		g.Prepare(v)
	}
	g.Cache.Set(raw, v, expires, EntryCost(raw, v))
	return v, nil
}

// EntryCost is what the cache is charged for a verified token: its bytes,
// its header values, and the rest of what an entry holds.
func EntryCost(raw string, v *Verified) int64 {
	return int64(len(raw) + v.Headers.Size() + cacheEntryOverhead)
}

// cacheEntryOverhead is what a cached token costs beyond its own bytes and
// its header values: the Verified struct, the identity's strings, the
// caller's Extra and ristretto's bookkeeping. Measured (the 1M-token
// benchmark, BenchmarkCacheOneMillionTokens) at about 2.1 KB of heap per
// entry for a 600-byte token; charging this much keeps the cache's real
// heap within token_cache_size rather than half again above it.
const cacheEntryOverhead = 1280
