// Package httpapi is the gateway's HTTP face, in plain net/http: the
// endpoints under the prefix (login, refresh, logout, me, profile, avatar,
// phone, the web login), the gate's handling of a request (finding its
// token, removing forged identity headers, refusing with the contract's
// errors), cookies, request decoding, the contract's error table and the
// per-IP rate limit. It turns HTTP into calls on the domain services and
// their answers into HTTP; the Caddy module builds it and hands it those
// services.
package httpapi

import (
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/gate"
	"github.com/wxauth/caddy-wxauth/internal/handoff"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
	"github.com/wxauth/caddy-wxauth/internal/scanlogin"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// Config is what an API is built from: the operator's choices and the
// domain services. Every field but Limiter, OpenBase, AvatarBase,
// TrustedOrigins and Shutdown must be set.
type Config struct {
	Prefix   string // the endpoints' path prefix, such as /wx
	Sandbox  bool   // the platform is the built-in fake: its authorize page is served here
	Optional bool   // requests without a token pass the gate anonymously
	// OpenBase is where the platform's authorize pages are ("" for the
	// platform's own, or the sandbox's page under the prefix).
	OpenBase string
	// AvatarBase is the public URL uploaded avatars are served under
	// ("" for the scheme and host of the upload, and the prefix).
	AvatarBase string
	// TrustedOrigins may send cookie-authenticated unsafe requests besides
	// the site's own origin.
	TrustedOrigins []string

	Logger   *zap.Logger
	Metrics  *metrics.Metrics
	Apps     *Apps
	Codec    *token.Codec
	Store    *store.Store
	Avatars  *avatar.Store
	Gate     *gate.Gate
	Logins   *login.Service
	Profiles *profile.Service
	Web      *weblogin.Flow
	Handoff  *handoff.Service
	Scan     *scanlogin.Flow
	Limiter  *ratelimit.Limiter // nil with rate_limit off
	// Shutdown is closed when the server shuts down (a reload or a stop):
	// long polls answer at once then, so that the shutdown need not wait
	// for them. nil: never.
	Shutdown <-chan struct{}
}

// API serves the endpoints and gates requests for one configuration.
type API struct {
	prefix     string
	sandbox    bool
	optional   bool
	openBase   string
	avatarBase string // ending in "/", or ""
	logger     *zap.Logger
	metrics    *metrics.Metrics

	apps     *Apps
	codec    *token.Codec
	store    *store.Store
	avatars  *avatar.Store
	gate     *gate.Gate
	logins   *login.Service
	profiles *profile.Service
	web      *weblogin.Flow
	handoff  *handoff.Service
	scan     *scanlogin.Flow
	limiter  *ratelimit.Limiter
	shutdown <-chan struct{}
	// crossOrigin refuses other origins' cookie-authenticated unsafe
	// requests.
	crossOrigin *http.CrossOriginProtection

	// sandboxPlatform serves the sandbox's authorize page.
	sandboxPlatform *fakeplatform.Engine

	endpoints http.Handler // the router
}

// Owns reports whether a request is for the endpoints: under the prefix
// (/wxfoo is not).
func (a *API) Owns(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, a.prefix) && (len(p) == len(a.prefix) || p[len(a.prefix)] == '/')
}

// ServeHTTP serves the endpoints.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.endpoints.ServeHTTP(w, r) }
