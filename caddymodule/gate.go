package caddymodule

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// ServeHTTP serves the login endpoints under the prefix and gates the rest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if endpoint, ok := h.endpoint(r.URL.Path); ok {
		h.serveEndpoint(w, r, endpoint)
		return nil
	}
	return h.gate(w, r, next)
}

// endpoint reports whether path is under the endpoint prefix, and the rest
// of the path after it ("login" for /wx/login).
func (h *Handler) endpoint(path string) (string, bool) {
	if !strings.HasPrefix(path, h.prefix) {
		return "", false
	}
	rest := path[len(h.prefix):]
	if rest == "" {
		return "", true
	}
	if rest[0] != '/' {
		return "", false // /wxfoo is not ours
	}
	return rest[1:], true
}

// gate strips forged identity headers, then lets the request through with
// verified identity headers, anonymously (optional mode), or not at all.
func (h *Handler) gate(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// First, whatever happens next: the upstream must never see an identity
	// header the client wrote, in the headers or in the trailers.
	identity.Strip(r.Header)
	stripTrailers(r)

	v, e := h.authenticate(r)
	if e == errNoCredentials {
		if h.Optional {
			h.metrics.GateAnonymous.Inc()
			stripGatewayCookies(r.Header)
			return next.ServeHTTP(w, r)
		}
		e = errLoginRequired()
	}
	if e != nil {
		h.metrics.GateDecisions.WithLabelValues(e.Code).Inc()
		// A token that was sent but does not verify is refused even in
		// optional mode: the client must learn to refresh or log in again
		// rather than silently become anonymous. A browser loading a page
		// is sent to log in instead.
		if !h.webLoginRedirect(w, r) {
			writeError(w, e)
		}
		return nil
	}

	// The token proves identity to us; the upstream gets the identity, not
	// the credential.
	h.metrics.GateAllowed.Inc()
	r.Header.Del("Authorization")
	stripGatewayCookies(r.Header)
	v.headers.Apply(r.Header)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	v.placeholders.set(repl)
	return next.ServeHTTP(w, r)
}

// stripTrailers keeps identity headers out of the request's trailers,
// which Caddy's reverse_proxy forwards to the upstream. net/http fills the
// trailers in only when the body has been read to its end, after the gate
// has run, so the body strips them at that moment; the names a client
// announced in its Trailer header go now, so that they are not announced
// upstream either.
//
// Only a request that announced trailers has a Trailer map here. net/http
// writes unannounced trailers into a map of its own, on its own copy of the
// request, which Caddy's handlers never see (the smuggling test checks that
// none arrive).
func stripTrailers(r *http.Request) {
	if r.Trailer == nil {
		return
	}
	identity.Strip(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerStrippingBody{ReadCloser: r.Body, r: r}
	}
}

// trailerStrippingBody strips the request's identity trailers when its
// body reaches EOF, before anything that reads the body (the proxy) can
// read the trailers.
type trailerStrippingBody struct {
	io.ReadCloser
	r *http.Request
}

func (b *trailerStrippingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		identity.Strip(b.r.Trailer)
	}
	return n, err
}

// errNoCredentials is authenticate's answer for a request that carries no
// token at all: the gate decides (optional mode) what that means.
var errNoCredentials = &apiError{}

// authenticate finds and checks the request's access token: the gate's and
// every Bearer endpoint's check.
func (h *Handler) authenticate(r *http.Request) (*verified, *apiError) {
	raw, present := bearerToken(r)
	fromCookie := false
	if !present {
		// Browsers of the web login carry the token in a cookie.
		c, err := r.Cookie(tokenCookie)
		if err != nil || c.Value == "" {
			return nil, errNoCredentials
		}
		raw, fromCookie = c.Value, true
		// The browser sends the cookie with whatever page asked: a page of
		// another origin (a sibling subdomain, another port) must not act
		// for the user. Bearer tokens are sent only by their holder's code.
		if h.crossOrigin.Check(r) != nil {
			return nil, errForbiddenOrigin()
		}
	}
	v, err := h.verify(raw)
	if err != nil {
		return nil, tokenError(err)
	}
	if fromCookie {
		// A copy: the cached value is shared by every request of the token.
		vc := *v
		vc.fromCookie = true
		v = &vc
	}
	// Checked on every request, cached or not: a reload may have removed
	// the app, and a logout on any node revokes the session.
	if _, known := h.apps[v.id.AppID]; !known {
		return nil, errTokenInvalid()
	}
	if h.state.revocations.Revoked(v.id.SessionID) {
		return nil, errTokenRevoked()
	}
	return v, nil
}

// verify checks a token's signature and claims, or finds it in the cache
// of tokens verified before.
func (h *Handler) verify(raw string) (*verified, error) {
	now := time.Now()
	if v, ok := h.state.cache.Get(raw, now); ok {
		h.metrics.CacheHits.Inc()
		return v, nil
	}
	h.metrics.CacheMisses.Inc()
	id, expires, err := h.codec.Verify(raw, now)
	if err != nil {
		return nil, err
	}
	v := &verified{id: id, expires: expires, headers: identity.NewHeaders(id, h.ForwardPhone), placeholders: newUserPlaceholders(&id)}
	h.state.cache.Set(raw, v, expires, int64(len(raw)+v.headers.Size()+cacheEntryOverhead))
	return v, nil
}

// cacheEntryOverhead is what a cached token costs beyond its own bytes and
// its header values: the verified struct, the identity's strings, the
// boxed placeholders and ristretto's bookkeeping. Measured (the 1M-token
// benchmark, BenchmarkCacheOneMillionTokens) at about 2.1 KB of heap per
// entry for a 600-byte token; charging this much keeps the cache's real
// heap within token_cache_size rather than half again above it.
const cacheEntryOverhead = 1280

// bearerToken returns the token of an "Authorization: Bearer" header, and
// whether the client sent one at all (an empty one counts as sent).
func bearerToken(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	if strings.EqualFold(auth, "bearer") {
		return "", true // the scheme with no token (HTTP trims the space)
	}
	const scheme = "bearer "
	if len(auth) < len(scheme) || !strings.EqualFold(auth[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(auth[len(scheme):]), true
}

// userPlaceholders are the values of the http.auth.user.* placeholders
// for one identity. They are boxed once, when the token is verified, so
// that setting them on every request of a cached token allocates nothing
// (a string stored in an interface is otherwise copied to the heap).
type userPlaceholders struct {
	openID, appID, unionID, nickname, source any
}

func newUserPlaceholders(id *identity.Identity) userPlaceholders {
	return userPlaceholders{
		openID:   id.OpenID,
		appID:    id.AppID,
		unionID:  id.UnionID,
		nickname: id.Nickname,
		source:   id.Source,
	}
}

func (p *userPlaceholders) set(repl *caddy.Replacer) {
	repl.Set("http.auth.user.id", p.openID)
	repl.Set("http.auth.user.openid", p.openID)
	repl.Set("http.auth.user.appid", p.appID)
	repl.Set("http.auth.user.unionid", p.unionID)
	repl.Set("http.auth.user.nickname", p.nickname)
	repl.Set("http.auth.user.source", p.source)
}

func tokenError(err error) *apiError {
	switch {
	case errors.Is(err, token.ErrExpired):
		return errTokenExpired()
	default:
		return errTokenInvalid()
	}
}
