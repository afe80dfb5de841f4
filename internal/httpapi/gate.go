package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/gate"
	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// errNoCredentials is authenticate's answer for a request that carries no
// token at all: the caller decides (optional mode) what that means.
var errNoCredentials = &apiError{}

// Gate lets a request through with verified identity headers, anonymously
// (optional mode: v is nil), or not at all (ok is false, and the refusal
// is answered: a 401, or for a browser loading a page a trip through the
// web login). A request let through has lost every identity header the
// client wrote, its token and the gateway's cookies.
func (a *API) Gate(w http.ResponseWriter, r *http.Request) (v *gate.Verified, ok bool) {
	stripForged(r)
	v, _, e := a.authenticate(r)
	if e == errNoCredentials {
		if a.optional {
			a.metrics.GateAnonymous.Inc()
			stripGatewayCookies(r.Header)
			return nil, true
		}
		e = errLoginRequired()
	}
	if e != nil {
		a.metrics.GateDecisions.WithLabelValues(e.Code).Inc()
		// A token that was sent but does not verify is refused even in
		// optional mode: the client must learn to refresh or log in again
		// rather than silently become anonymous. A browser loading a page
		// is sent to log in instead.
		if !a.webLoginRedirect(w, r) {
			writeError(w, e)
		}
		return nil, false
	}
	a.metrics.GateAllowed.Inc()
	pass(r, v)
	return v, true
}

// Authenticate is Gate for an authentication provider: a token is
// required, and a refusal only sets the WWW-Authenticate challenge (the
// provider's caller answers the 401).
func (a *API) Authenticate(w http.ResponseWriter, r *http.Request) (*gate.Verified, bool) {
	stripForged(r)
	v, _, e := a.requireToken(r)
	if e != nil {
		a.metrics.GateDecisions.WithLabelValues(e.Code).Inc()
		setChallenge(w.Header(), e)
		return nil, false
	}
	a.metrics.GateAllowed.Inc()
	pass(r, v)
	return v, true
}

// authenticate finds and checks the request's access token: the gate's and
// every token endpoint's check. fromCookie says the token came in the web
// login's cookie.
func (a *API) authenticate(r *http.Request) (v *gate.Verified, fromCookie bool, e *apiError) {
	raw, present := bearerToken(r)
	if !present {
		c, err := r.Cookie(tokenCookie)
		if err != nil || c.Value == "" {
			return nil, false, errNoCredentials
		}
		raw, fromCookie = c.Value, true
		// The browser sends the cookie with whatever page asked: a page of
		// another origin (a sibling subdomain, another port) must not act
		// for the user. Bearer tokens are sent only by their holder's code.
		if a.crossOrigin.Check(r) != nil {
			return nil, true, errForbiddenOrigin()
		}
	}
	v, err := a.gate.Check(raw, time.Now())
	if err != nil {
		return nil, fromCookie, gateError(err)
	}
	return v, fromCookie, nil
}

// requireToken is the check of every token endpoint: a token is required
// even in optional mode.
func (a *API) requireToken(r *http.Request) (*gate.Verified, bool, *apiError) {
	v, fromCookie, e := a.authenticate(r)
	if e == errNoCredentials {
		e = errLoginRequired()
	}
	return v, fromCookie, e
}

func gateError(err error) *apiError {
	switch {
	case errors.Is(err, gate.ErrExpired):
		return errTokenExpired()
	case errors.Is(err, gate.ErrRevoked):
		return errTokenRevoked()
	}
	return errTokenInvalid()
}

// stripForged removes, first and whatever happens next, every identity
// header a client wrote: the upstream must never see one, in the headers or
// in the trailers.
func stripForged(r *http.Request) {
	identity.Strip(r.Header)
	stripTrailers(r)
}

// pass makes a verified request fit for the upstream: the token proves
// identity to us; the upstream gets the identity, not the credential, and
// none of the gateway's cookies.
func pass(r *http.Request, v *gate.Verified) {
	r.Header.Del("Authorization")
	stripGatewayCookies(r.Header)
	v.Headers.Apply(r.Header)
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
