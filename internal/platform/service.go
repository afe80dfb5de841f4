package platform

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultRefreshMargin is how long before its expiry a cached access_token is
// replaced when Service.RefreshMargin is zero. stable_token's normal mode
// issues the next token about 5 minutes before the current one expires, so a
// fetch earlier than that only gets the same token back.
const DefaultRefreshMargin = 5 * time.Minute

// tokenRejected are the errcodes with which a WeChat or QQ API refuses the
// access_token itself (40001 invalid, 42001 expired, 40014 malformed): the
// call was not accepted, so it can be sent again with a fresh token.
var tokenRejected = map[int]bool{40001: true, 40014: true, 42001: true}

// Service calls the platform APIs that need an app's access_token: content
// checks and phone numbers. It fetches the token with stable_token (QQ:
// getToken), caches it per app until shortly before it expires, and when an
// API refuses it, fetches it again and retries once.
//
// The zero Service is ready to use. A Service is safe for concurrent use and
// is meant to live as long as the node: keep it across config reloads, so a
// reload does not fetch every token again. An app whose secret changed gets a
// token of its own. A Service must not be copied after first use.
type Service struct {
	// Client makes the calls; nil means a zero Client.
	Client *Client
	// Now tells the time for the token cache; nil means time.Now.
	Now func() time.Time
	// RefreshMargin: a cached token is replaced this long before it expires;
	// zero or less means DefaultRefreshMargin. It is bounded by half the
	// token's lifetime, so a short expires_in still gets used rather than
	// being fetched again on every call.
	RefreshMargin time.Duration

	mu      sync.Mutex
	tokens  map[tokenKey]cachedToken
	flights map[tokenKey]*tokenFlight
}

// tokenKey identifies whose token a cache entry is. The secret is part of it
// (as a hash, so the cache does not hold the secret): after a reload with a
// new secret, the old secret's token is not reused.
type tokenKey struct {
	source     string // the token API, which every WeChat kind shares
	appid      string
	apiBase    string
	secretHash [sha256.Size]byte
}

func newTokenKey(app App) tokenKey {
	return newSourceKey(app, appTokenSource(app))
}

func newSourceKey(app App, src tokenSource) tokenKey {
	return tokenKey{source: src.api, appid: app.AppID, apiBase: app.apiBase(), secretHash: sha256.Sum256([]byte(app.Secret))}
}

// tokenSource is a platform API that issues an app's access_token.
type tokenSource struct {
	api   string // the name errors give it, e.g. "stable_token"
	fetch func(c *Client, ctx context.Context, app App) (token string, expiresIn time.Duration, err error)
}

// appTokenSource is the token API of app's platform: stable_token (in its
// normal mode, even after an API refused the token: it gives whatever token
// the platform holds as current, so it picks up a token someone else
// refreshed, and it never invalidates the token the other nodes are using;
// a forced refresh would, and the platform allows only a few a day), QQ's
// getToken, Douyin's and Baidu's own.
func appTokenSource(app App) tokenSource {
	switch app.Kind {
	case Douyin:
		return douyinTokenSource
	case Baidu:
		return baiduTokenSource
	}
	return tokenSource{api: tokenAPI(app), fetch: func(c *Client, ctx context.Context, app App) (string, time.Duration, error) {
		return c.StableToken(ctx, app, false)
	}}
}

// cachedToken is a token and when to stop using it.
type cachedToken struct {
	token     string
	refreshAt time.Time // replace it from then on
	expiresAt time.Time // unusable from then on (conservatively: counted from before the fetch)
}

// tokenFlight is one fetch that every caller needing the token waits for.
type tokenFlight struct {
	done  chan struct{} // closed when token and err are set
	token string
	err   *Error
}

var zeroClient Client

func (s *Service) client() *Client {
	if s.Client != nil {
		return s.Client
	}
	return &zeroClient
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// AccessToken returns app's access_token from the cache, or fetches it.
// Concurrent callers that find no usable token share one fetch and its
// result. A caller whose ctx ends stops waiting, but the fetch goes on for
// the others, bounded by the Client's timeout. A failed fetch is not cached.
func (s *Service) AccessToken(ctx context.Context, app App) (string, error) {
	src := appTokenSource(app)
	return s.accessToken(ctx, app, src, newSourceKey(app, src))
}

func (s *Service) accessToken(ctx context.Context, app App, src tokenSource, key tokenKey) (string, error) {
	api := src.api
	if ctx.Err() != nil {
		return "", interrupted(api, ctx, s.client().timeout())
	}

	s.mu.Lock()
	if t, ok := s.tokens[key]; ok && s.now().Before(t.refreshAt) {
		s.mu.Unlock()
		return t.token, nil
	}
	f, ok := s.flights[key]
	if !ok {
		f = &tokenFlight{done: make(chan struct{})}
		if s.flights == nil {
			s.flights = map[tokenKey]*tokenFlight{}
		}
		s.flights[key] = f
		// The fetch outlives this caller's cancellation (other callers may
		// be waiting for it) but keeps its values, e.g. for tracing.
		go s.fetch(context.WithoutCancel(ctx), app, src, key, f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
		if f.err != nil {
			e := *f.err // each caller gets its own copy to keep or change
			return "", &e
		}
		return f.token, nil
	case <-ctx.Done():
		return "", interrupted(api, ctx, s.client().timeout())
	}
}

// fetch runs one flight: it fetches the token, caches it, and releases the
// waiters.
func (s *Service) fetch(ctx context.Context, app App, src tokenSource, key tokenKey, f *tokenFlight) {
	// The token's lifetime is counted from before the request: the token
	// cannot have been issued earlier, so it never outlives our estimate.
	start := s.now()
	var (
		token     string
		expiresIn time.Duration
		err       error
	)
	defer func() {
		// Whatever happens, the flight ends and its waiters are released; a
		// panic (a broken RoundTripper) becomes an error rather than killing
		// the node from this goroutine.
		if p := recover(); p != nil {
			err = unavailable(src.api, "wxauth failed while fetching the app's access_token; try again later")
		}
		s.finish(key, f, src.api, start, token, expiresIn, err)
	}()
	token, expiresIn, err = src.fetch(s.client(), ctx, app)
}

// finish caches the flight's result (unless it failed), publishes it to the
// waiters and ends the flight.
func (s *Service) finish(key tokenKey, f *tokenFlight, api string, start time.Time, token string, expiresIn time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.flights, key)
	defer close(f.done)

	if err != nil {
		// A failed refresh does not break calls while the old token is
		// still valid: it is only past its refresh time.
		if old, ok := s.tokens[key]; ok && s.now().Before(old.expiresAt) {
			f.token = old.token
			return
		}
		if f.err = AsError(err); f.err == nil {
			// Only a programming error gets here: StableToken returns *Error.
			f.err = unavailable(api, "fetching the app's access_token failed; try again later")
		}
		return
	}

	margin := s.RefreshMargin
	if margin <= 0 {
		margin = DefaultRefreshMargin
	}
	margin = min(margin, expiresIn/2)
	if s.tokens == nil {
		s.tokens = map[tokenKey]cachedToken{}
	}
	now := s.now()
	for k, t := range s.tokens {
		// Entries of apps that are gone (a reload, a new secret) would
		// otherwise stay for the life of the node.
		if !now.Before(t.expiresAt) {
			delete(s.tokens, k)
		}
	}
	s.tokens[key] = cachedToken{token: token, refreshAt: start.Add(expiresIn - margin), expiresAt: start.Add(expiresIn)}
	f.token = token
}

// dropToken forgets token, which an API refused, unless the cache already
// holds another one: a concurrent caller may have replaced it with a fresh
// token, which must not be dropped because of a stale one.
func (s *Service) dropToken(key tokenKey, token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[key]; ok && t.token == token {
		delete(s.tokens, key)
	}
}

// call sends req with app's access_token and decodes the answer into out.
// When the API refuses the token (40001, 42001, 40014), the platform did not
// accept the call, so it is sent once more with a fresh token, even a billed
// one; a second refusal fails with Unavailable.
func (s *Service) call(ctx context.Context, app App, req request, out any) error {
	return s.callWith(ctx, app, appTokenSource(app), req, out)
}

// callWith is call with the token of src (Douyin's phone API takes a
// client_token rather than the app's access_token).
func (s *Service) callWith(ctx context.Context, app App, src tokenSource, req request, out any) error {
	key := newSourceKey(app, src)
	for attempt := 1; ; attempt++ {
		token, err := s.accessToken(ctx, app, src, key)
		if err != nil {
			return err
		}
		req.accessToken = token
		err = s.client().call(ctx, app, req, out)
		e := AsError(err)
		if e == nil || !e.tokenRefused {
			return err
		}
		s.dropToken(key, token)
		if attempt > 1 {
			return err
		}
	}
}
