package httpapi

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// route is one endpoint under the prefix.
type route struct {
	// methods the endpoint takes, such as "POST" or "GET, HEAD".
	methods string
	// path after the prefix, in ServeMux syntax ("/avatar/{id}").
	path    string
	handler http.HandlerFunc
	// limited names the endpoint in the rate limit ("" when it does not
	// count against it).
	limited string
}

// routes are the endpoints of a configuration.
func (s *API) routes() []route {
	sessions := sessionEndpoints{s}
	profiles := profileEndpoints{s}
	web := webEndpoints{s}
	handoff := handoffEndpoints{s}
	scan := scanEndpoints{s}
	rs := []route{
		{"POST", "/login", sessions.login, "login"},
		{"POST", "/refresh", sessions.refresh, "refresh"},
		{"POST", "/logout", sessions.logout, ""},
		{"GET", "/me", profiles.me, ""},
		{"POST", "/profile", profiles.profile, "profile"},
		{"GET, HEAD", "/avatar/{id}", profiles.avatar, ""},
		{"POST", "/phone", profiles.phone, "phone"},
		{"GET, HEAD", "/web/login", web.login, "web/login"},
		{"GET", "/web/callback", web.callback, "web/callback"},
		{"POST", "/handoff", handoff.issue, "handoff"},
		{"GET", "/web/handoff", handoff.redeem, "web/handoff"},
		{"GET, HEAD", "/.well-known/jwks.json", s.jwks, ""},
		{"POST", "/scan", scan.begin, "scan"},
		// scan/wait and scan/<ticket>.png; scan/scanned, scan/confirm and
		// scan/cancel. (One pattern: "<ticket>.png" is no ServeMux
		// wildcard, and a literal path beside {name} would conflict.)
		{"GET", "/scan/{name}", scan.get, ""},
		{"POST", "/scan/{name}", scan.post, ""},
	}
	if s.sandbox {
		// The sandbox's stand-ins for open.weixin.qq.com's two pages.
		rs = append(rs,
			route{"GET", "/web/sandbox/connect/oauth2/authorize", web.sandboxAuthorize, ""},
			route{"GET", "/web/sandbox/connect/qrconnect", web.sandboxAuthorize, ""},
			// The sandbox's phone: scan, confirm or cancel as a named user.
			route{"POST", "/scan/sandbox/{step}", scan.sandboxStep, "scan"})
	}
	return rs
}

// router serves the endpoints under the prefix: a ServeMux with a pattern
// per endpoint and method, answering the contract's JSON errors itself for
// a path that is no endpoint (404) or a method it does not take (405 with
// Allow).
type router struct{ mux *http.ServeMux }

func newRouter(s *API) *router {
	mux := http.NewServeMux()
	// The methods of each path, in route order: a path may have a route
	// per method (one handler for POSTs, another for GETs).
	var paths []string
	methodsOf := map[string][]string{}
	limitOf := map[string]string{} // the path's first limited route's name
	handle := func(pattern, limited string, h http.HandlerFunc) {
		if limited != "" {
			h = s.limited(limited, h)
		}
		mux.HandleFunc(pattern, h)
	}
	for _, rt := range s.routes() {
		p := s.prefix + rt.path
		if methodsOf[p] == nil {
			paths = append(paths, p)
		}
		if limitOf[p] == "" {
			limitOf[p] = rt.limited
		}
		for _, m := range strings.Split(rt.methods, ", ") {
			handle(m+" "+p, rt.limited, rt.handler)
			methodsOf[p] = append(methodsOf[p], m)
		}
	}
	for _, p := range paths {
		allow := strings.Join(methodsOf[p], ", ")
		notAllowed := func(w http.ResponseWriter, _ *http.Request) { writeError(w, errMethod(allow)) }
		// A GET pattern also takes HEAD, unless HEAD has one of its own.
		if slices.Contains(methodsOf[p], http.MethodGet) && !slices.Contains(methodsOf[p], http.MethodHead) {
			handle(http.MethodHead+" "+p, limitOf[p], notAllowed)
		}
		// Any other method.
		handle(p, limitOf[p], notAllowed)
	}
	return &router{mux: mux}
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeMux would redirect an unclean path to its clean form; no
	// endpoint is at an unclean path.
	if p := r.URL.Path; path.Clean(p) != p || strings.HasSuffix(p, "/") {
		writeError(w, errNotFound())
		return
	}
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		writeError(w, errNotFound())
		return
	}
	rt.mux.ServeHTTP(w, r)
}

// New builds the API of a configuration.
func New(c Config) (*API, error) {
	a := &API{
		prefix: c.Prefix, sandbox: c.Sandbox, optional: c.Optional, openBase: c.OpenBase, avatarBase: c.AvatarBase,
		logger: c.Logger, metrics: c.Metrics, apps: c.Apps, codec: c.Codec, store: c.Store, avatars: c.Avatars,
		gate: c.Gate, logins: c.Logins, profiles: c.Profiles, web: c.Web, handoff: c.Handoff, scan: c.Scan, limiter: c.Limiter, shutdown: c.Shutdown,
		crossOrigin: http.NewCrossOriginProtection(),
	}
	if a.sandbox {
		a.sandboxPlatform = fakeplatform.Sandbox()
	}
	if a.avatarBase != "" && !strings.HasSuffix(a.avatarBase, "/") {
		a.avatarBase += "/"
	}
	for _, origin := range c.TrustedOrigins {
		if err := a.crossOrigin.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("trusted_origins: %w", err)
		}
	}
	a.endpoints = newRouter(a)
	return a, nil
}
