// Package caddymodule is the Caddy glue of caddy-wxauth: the
// http.handlers.wxauth module, its Caddyfile directive, and the HTTP face of
// the login endpoints and the identity gate. The work itself lives in plain
// packages beside it (platform, token, session, login, identity).
package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, as the contract states them.
const (
	DefaultEndpoints      = "/wx"
	DefaultAccessTTL      = 2 * time.Hour
	DefaultRefreshTTL     = 720 * time.Hour
	DefaultRevocationSync = 5 * time.Second
	DefaultSweepInterval  = time.Hour
	// DefaultRateLimit per client IP on the endpoints that log in or reach
	// the platform: enough for a person and a few neighbours behind one
	// carrier NAT, far below what the platform's own limits allow a flood.
	DefaultRateLimitRequests = 60
	DefaultRateLimitWindow   = time.Minute
	// DefaultPlatformConcurrency is the calls in flight per app and node.
	DefaultPlatformConcurrency = 16
	// DefaultRefreshGrace covers a retry after a lost answer and tabs
	// refreshing at once, and is short enough that a stolen spent token is
	// of little use.
	DefaultRefreshGrace    = 30 * time.Second
	minSigningKeyLength    = 32
	defaultTokenCacheBytes = token.DefaultCacheMaxCost
)

// Handler is the wxauth gateway: it serves the login endpoints under its
// prefix and lets every other request through only with a valid token,
// carrying verified identity headers upstream.
type Handler struct {
	// Apps are the mini programs (and later web apps) this gateway logs in.
	Apps []AppConfig `json:"apps,omitempty"`

	// Sandbox answers every platform call in-process with a fake platform:
	// no credentials, no network. For development only.
	Sandbox bool `json:"sandbox,omitempty"`

	// APIBase overrides every app's platform API base URL.
	APIBase string `json:"api_base,omitempty"`

	// OpenBase overrides https://open.weixin.qq.com, where web logins go.
	OpenBase string `json:"open_base,omitempty"`

	// Endpoints is the path prefix of the login endpoints. Default /wx.
	Endpoints string `json:"endpoints,omitempty"`

	// Optional lets requests without a token through, anonymously.
	Optional bool `json:"optional,omitempty"`

	// AccessTTL is the lifetime of an access token. Default 2h.
	AccessTTL caddy.Duration `json:"access_ttl,omitempty"`

	// RefreshTTL is the lifetime of a refresh token. Default 720h.
	RefreshTTL caddy.Duration `json:"refresh_ttl,omitempty"`

	// SigningKey switches tokens to HS256 with this key (>= 32 bytes).
	// Placeholders such as {env.WX_SIGNING_KEY} are replaced at start-up.
	// Default: an Ed25519 key created once and kept in Caddy storage.
	SigningKey string `json:"signing_key,omitempty"`

	// ForwardPhone also sends X-WX-PHONE upstream.
	ForwardPhone bool `json:"forward_phone,omitempty"`

	// PlatformTimeout bounds each call to the platform. Default 5s.
	PlatformTimeout caddy.Duration `json:"platform_timeout,omitempty"`

	// TokenCacheBytes bounds the memory of the verified-token cache.
	TokenCacheBytes int64 `json:"token_cache_bytes,omitempty"`

	// RevocationSync is how often this node reads revoked sessions from
	// storage: a logout on one node is enforced on every node within it.
	// Default 5s.
	RevocationSync caddy.Duration `json:"revocation_sync,omitempty"`

	// SweepInterval is how often expired sessions are removed from
	// storage (by one node at a time). Default 1h.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`

	// AvatarBase is the public URL under which uploaded avatars are
	// served, such as https://api.example.com/wx/avatar/ (set it when Caddy
	// sits behind another proxy that terminates TLS). Default: the scheme
	// and host the upload came to, followed by <endpoints>/avatar/.
	AvatarBase string `json:"avatar_base,omitempty"`

	// RateLimit limits each client IP (Caddy's client IP, so
	// trusted_proxies is honoured) on the login, refresh, profile, phone
	// and web login endpoints. Default 60 requests a minute.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`

	// PlatformConcurrency bounds the calls in flight to the platform per
	// app on this node. Default 16.
	PlatformConcurrency int `json:"platform_concurrency,omitempty"`

	// RefreshGrace is how long after a refresh token is spent a client
	// may present it again and get the same successor (a lost answer,
	// parallel tabs) instead of being taken for a thief. Default 30s; 0
	// turns it off.
	RefreshGrace *caddy.Duration `json:"refresh_grace,omitempty"`

	// TrustedOrigins are origins (scheme://host[:port]) besides the site's
	// own whose pages may send cookie-authenticated unsafe requests (POST,
	// PUT, DELETE, ...) to the endpoints and through the gate.
	TrustedOrigins []string `json:"trusted_origins,omitempty"`

	apps           map[string]platform.App // by appid, secrets resolved
	onlyApp        *platform.App           // set when exactly one mini program is configured
	webApps        []platform.App          // the web apps, in config order
	webScopes      map[string]string       // appid → OAuth scope of each web app
	noContentCheck map[string]bool         // appids whose operator turned the content check off
	prefix         string
	avatarURLBase  string // AvatarBase ending in "/"
	codec          *token.Codec
	logins         *login.Service
	profiles       *profile.Service
	store          *store.Store
	avatars        *avatar.Store
	logger         *zap.Logger
	accessTTL      time.Duration
	state          *sharedState // shared with the previous config's handler on reload
	stateKey       string
	platform       *platform.Service // shared by every handler on this node with the same client settings
	platformKey    string
	limiter        *ratelimit.Limiter // nil with rate_limit off
	limiterKey     string
	metrics        *metrics.Metrics
	crossOrigin    *http.CrossOriginProtection // refuses other origins' cookie-authenticated unsafe requests
}

// RateLimit is the per-client-IP limit: Requests per Window, in bursts of
// up to Requests. Off turns it off (and with it the backoff after the
// platform's errcode 45011).
type RateLimit struct {
	Requests int            `json:"requests,omitempty"`
	Window   caddy.Duration `json:"window,omitempty"`
	Off      bool           `json:"off,omitempty"`
}

// AppConfig is one mini program or web app.
type AppConfig struct {
	AppID string `json:"appid"`
	// Secret is the appsecret; {env.*} and {file.*} placeholders keep it
	// out of the config itself (and out of the admin API's /config).
	Secret   string `json:"secret,omitempty"`
	Platform string `json:"platform,omitempty"`
	Scope    string `json:"scope,omitempty"`
	APIBase  string `json:"api_base,omitempty"`

	// ContentCheck set to false skips the platform's content check of this
	// app's nicknames and avatars (on by default). For apps whose own
	// moderation covers it, or where the check's quota is a problem.
	ContentCheck *bool `json:"content_check,omitempty"`
}

// webScope is the OAuth scope a web app asks for: snsapi_login for QR
// login, snsapi_base (a silent login) unless the operator asked for
// snsapi_userinfo on official-account pages.
func (ac AppConfig) webScope() string {
	switch kind, _ := ac.kind(); {
	case kind == platform.WeChatQR:
		return "snsapi_login"
	case ac.Scope != "":
		return ac.Scope
	}
	return "snsapi_base"
}

// kind is the app's platform; wechat when none is set.
func (ac AppConfig) kind() (platform.Kind, error) {
	if ac.Platform == "" {
		return platform.WeChat, nil
	}
	return platform.ParseKind(ac.Platform)
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wxauth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision resolves secrets, loads the signing key and builds the services.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.checkConfig(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()

	h.prefix = strings.TrimSuffix(h.Endpoints, "/")
	if h.prefix == "" {
		h.prefix = DefaultEndpoints
	}
	h.accessTTL = durationOr(h.AccessTTL, DefaultAccessTTL)
	refreshTTL := durationOr(h.RefreshTTL, DefaultRefreshTTL)

	h.crossOrigin = http.NewCrossOriginProtection()
	for _, origin := range h.TrustedOrigins {
		if err := h.crossOrigin.AddTrustedOrigin(origin); err != nil {
			return fmt.Errorf("wxauth: trusted_origins: %w", err)
		}
	}

	h.avatarURLBase = h.AvatarBase
	if h.avatarURLBase != "" && !strings.HasSuffix(h.avatarURLBase, "/") {
		h.avatarURLBase += "/"
	}

	h.apps = make(map[string]platform.App, len(h.Apps))
	h.noContentCheck = make(map[string]bool)
	for _, ac := range h.Apps {
		app, err := h.resolveApp(ac, repl)
		if err != nil {
			return err
		}
		h.apps[app.AppID] = app
		if ac.ContentCheck != nil && !*ac.ContentCheck {
			h.noContentCheck[app.AppID] = true
		}
	}
	var miniPrograms []platform.App
	h.webApps = nil
	h.webScopes = make(map[string]string)
	for _, ac := range h.Apps { // config order: the first web app is the default
		app := h.apps[ac.AppID]
		if !app.Kind.IsWeb() {
			miniPrograms = append(miniPrograms, app)
			continue
		}
		h.webApps = append(h.webApps, app)
		h.webScopes[app.AppID] = ac.webScope()
	}
	// A login body may leave out the appid when there is one mini program:
	// web apps never post to /wx/login.
	if len(miniPrograms) == 1 {
		h.onlyApp = &miniPrograms[0]
	}

	h.store = store.NewStore(ctx.Storage())
	h.avatars = avatar.NewStore(ctx.Storage())
	if err := h.loadCodec(ctx, repl); err != nil {
		return err
	}

	h.metrics = metrics.Get()
	if err := h.metrics.Register(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("wxauth: registering metrics: %v", err)
	}

	cacheBytes := h.TokenCacheBytes
	if cacheBytes == 0 {
		cacheBytes = defaultTokenCacheBytes
	}
	if h.Sandbox {
		h.logger.Warn("sandbox mode: logins are answered by a built-in fake platform; never use it in production")
	}
	// One client per node and settings, shared through the pool: the bound
	// on concurrent calls per app holds for every handler and reload.
	concurrency := h.PlatformConcurrency
	if concurrency == 0 {
		concurrency = DefaultPlatformConcurrency
	}
	h.platformKey = platformServiceKey(h.Sandbox, time.Duration(h.PlatformTimeout), concurrency)
	ps, _, _ := platformServices.LoadOrNew(h.platformKey, func() (caddy.Destructor, error) {
		m := h.metrics // not h: the client outlives this handler
		client := &platform.Client{
			Timeout:             time.Duration(h.PlatformTimeout),
			MaxConcurrentPerApp: concurrency,
			Observe: func(x platform.Exchange) {
				m.PlatformExchange(x.API, x.Outcome, x.Duration)
			},
		}
		if h.Sandbox {
			client.HTTP = &http.Client{Transport: fakeplatform.Sandbox().Transport()}
		}
		return platformService{&platform.Service{Client: client}}, nil
	})
	h.platform = ps.(platformService).Service

	if h.RateLimit == nil || !h.RateLimit.Off {
		requests, window := h.rateLimit()
		h.limiterKey = limiterKey(requests, window)
		l, _, _ := limiters.LoadOrNew(h.limiterKey, func() (caddy.Destructor, error) {
			return newLimiter(requests, window), nil
		})
		h.limiter = l.(*limiter).Limiter
	}

	settings := stateSettings{
		storageID:      storageID(ctx.Storage()),
		keyID:          h.codec.KeyID(),
		forwardPhone:   h.ForwardPhone,
		cacheBytes:     cacheBytes,
		revocationSync: durationOr(h.RevocationSync, DefaultRevocationSync),
		sweepInterval:  durationOr(h.SweepInterval, DefaultSweepInterval),
	}
	h.stateKey = settings.key()
	st, loaded, err := states.LoadOrNew(h.stateKey, func() (caddy.Destructor, error) {
		return newSharedState(settings, h.store, h.logger, h.metrics)
	})
	if err != nil {
		return fmt.Errorf("wxauth: %v", err)
	}
	h.state = st.(*sharedState)
	if loaded {
		h.logger.Debug("reusing the in-memory state of the previous config (token cache, revocations)")
	}

	h.logins = &login.Service{
		Exchanger:    h.platform.Client,
		Store:        h.store,
		Codec:        h.codec,
		AccessTTL:    h.accessTTL,
		RefreshTTL:   refreshTTL,
		RefreshGrace: h.refreshGrace(),
		Apps:         h.app,
		Flights:      h.state.flights,
		Revocations:  h.state.revocations,
	}
	h.profiles = &profile.Service{
		Users:   h.store,
		Avatars: h.avatars,
		Checker: h.platform,
		Phones:  h.platform,
	}
	if h.limiter != nil {
		h.profiles.Backoff = h.limiter
	}
	return nil
}

func (h *Handler) loadCodec(ctx caddy.Context, repl *caddy.Replacer) error {
	if h.SigningKey != "" {
		key := repl.ReplaceKnown(h.SigningKey, "")
		codec, err := token.NewHS256Codec([]byte(key))
		if err != nil {
			return fmt.Errorf("wxauth: signing_key: %v", err)
		}
		h.codec = codec
		return nil
	}
	key, err := token.LoadOrCreateEd25519(ctx, ctx.Storage())
	if err != nil {
		return fmt.Errorf("wxauth: loading the token signing key from Caddy storage: %v", err)
	}
	h.codec = token.NewEd25519Codec(key)
	return nil
}

// resolveApp turns one app's config into what the platform client needs,
// replacing placeholders in the secret.
func (h *Handler) resolveApp(ac AppConfig, repl *caddy.Replacer) (platform.App, error) {
	kind, err := ac.kind()
	if err != nil {
		return platform.App{}, fmt.Errorf("wxauth: app %s: %v", ac.AppID, err)
	}
	app := platform.App{AppID: ac.AppID, Kind: kind, APIBase: ac.APIBase}
	if app.APIBase == "" {
		app.APIBase = h.APIBase
	}
	if h.Sandbox {
		return app, nil
	}
	app.Secret = repl.ReplaceKnown(ac.Secret, "")
	if app.Secret == "" {
		hint := ""
		if strings.Contains(ac.Secret, "{") {
			hint = fmt.Sprintf(" (%s resolved to nothing: is the variable or file there?)", ac.Secret)
		}
		return platform.App{}, fmt.Errorf("wxauth: app %s has no secret%s; set `secret` (e.g. secret {env.WX_SECRET}) or use `sandbox` for development", ac.AppID, hint)
	}
	return app, nil
}

// checkConfig finds the mistakes that need no outside state. It runs from
// Provision, so `caddy validate` and `caddy run` report them alike.
func (h *Handler) checkConfig() error {
	if len(h.Apps) == 0 {
		return errors.New("wxauth: no app configured; add `app <appid> { secret ... }` (or `app <appid>` with `sandbox`)")
	}
	seen := make(map[string]bool, len(h.Apps))
	for _, ac := range h.Apps {
		if !valid.ID(ac.AppID) {
			return fmt.Errorf("wxauth: appid %q is not valid: use letters, digits, '_' or '-' (e.g. wx1234567890abcdef)", ac.AppID)
		}
		if seen[ac.AppID] {
			return fmt.Errorf("wxauth: app %s is configured twice", ac.AppID)
		}
		seen[ac.AppID] = true
		kind, err := ac.kind()
		if err != nil {
			return fmt.Errorf("wxauth: app %s: %v", ac.AppID, err)
		}
		switch {
		case ac.Scope != "" && kind == platform.WeChatQR:
			return fmt.Errorf("wxauth: app %s: a wechat-qr app always uses scope snsapi_login; remove scope", ac.AppID)
		case ac.Scope != "" && kind != platform.WeChatWeb:
			return fmt.Errorf("wxauth: app %s: scope applies only to wechat-web apps (official-account pages)", ac.AppID)
		case ac.Scope != "" && ac.Scope != "snsapi_base" && ac.Scope != "snsapi_userinfo":
			return fmt.Errorf("wxauth: app %s: scope %q: want snsapi_base or snsapi_userinfo", ac.AppID, ac.Scope)
		}
		if !h.Sandbox && ac.Secret == "" {
			return fmt.Errorf("wxauth: app %s has no secret; set `secret` (e.g. secret {env.WX_SECRET}) or use `sandbox` for development", ac.AppID)
		}
		if err := checkBaseURL("api_base", ac.APIBase); err != nil {
			return fmt.Errorf("wxauth: app %s: %v", ac.AppID, err)
		}
	}
	if h.Sandbox && h.APIBase != "" {
		return errors.New("wxauth: sandbox and api_base both set: sandbox answers every platform call in-process, so remove one of them")
	}
	if h.Sandbox && h.OpenBase != "" {
		return errors.New("wxauth: sandbox and open_base both set: sandbox serves its own authorize page, so remove one of them")
	}
	if err := checkBaseURL("api_base", h.APIBase); err != nil {
		return fmt.Errorf("wxauth: %v", err)
	}
	if err := checkBaseURL("open_base", h.OpenBase); err != nil {
		return fmt.Errorf("wxauth: %v", err)
	}
	if err := checkBaseURL("avatar_base", h.AvatarBase); err != nil {
		return fmt.Errorf("wxauth: %v", err)
	}
	if h.Endpoints != "" && (!strings.HasPrefix(h.Endpoints, "/") || strings.ContainsAny(h.Endpoints, "?#* ") || strings.TrimSuffix(h.Endpoints, "/") == "") {
		return fmt.Errorf("wxauth: endpoints %q must be a path prefix such as /wx or /auth/wx", h.Endpoints)
	}
	if h.SigningKey != "" && !strings.Contains(h.SigningKey, "{") && len(h.SigningKey) < minSigningKeyLength {
		return fmt.Errorf("wxauth: signing_key is %d bytes; it must be at least %d bytes of random data (e.g. openssl rand -base64 48)", len(h.SigningKey), minSigningKeyLength)
	}
	for _, d := range []struct {
		name  string
		value caddy.Duration
	}{{"access_ttl", h.AccessTTL}, {"refresh_ttl", h.RefreshTTL}, {"platform_timeout", h.PlatformTimeout},
		{"revocation_sync", h.RevocationSync}, {"sweep_interval", h.SweepInterval}} {
		if d.value < 0 {
			return fmt.Errorf("wxauth: %s must be positive", d.name)
		}
	}
	if h.AccessTTL > 0 && h.AccessTTL < caddy.Duration(time.Second) {
		return errors.New("wxauth: access_ttl must be at least 1s")
	}
	if durationOr(h.RefreshTTL, DefaultRefreshTTL) < durationOr(h.AccessTTL, DefaultAccessTTL) {
		return errors.New("wxauth: refresh_ttl must not be shorter than access_ttl")
	}
	if h.RevocationSync > 0 && h.RevocationSync < caddy.Duration(100*time.Millisecond) {
		return errors.New("wxauth: revocation_sync must be at least 100ms (every sync lists the revocations in storage)")
	}
	if h.SweepInterval > 0 && h.SweepInterval < caddy.Duration(time.Second) {
		return errors.New("wxauth: sweep_interval must be at least 1s")
	}
	if h.TokenCacheBytes < 0 {
		return errors.New("wxauth: token_cache_bytes must be positive")
	}
	if rl := h.RateLimit; rl != nil && !rl.Off && (rl.Requests < 0 || rl.Window < 0) {
		return errors.New("wxauth: rate_limit: requests and window must be positive (e.g. rate_limit 60 1m), or rate_limit off")
	}
	if h.PlatformConcurrency < 0 {
		return errors.New("wxauth: platform_concurrency must be positive")
	}
	if h.RefreshGrace != nil && (*h.RefreshGrace < 0 || time.Duration(*h.RefreshGrace) > durationOr(h.RefreshTTL, DefaultRefreshTTL)) {
		return errors.New("wxauth: refresh_grace must be between 0 (off) and refresh_ttl; the default is 30s")
	}
	for _, origin := range h.TrustedOrigins {
		if err := checkOrigin(origin); err != nil {
			return fmt.Errorf("wxauth: trusted_origins: %w", err)
		}
	}
	return nil
}

// checkOrigin accepts what a browser sends as Origin: scheme://host[:port]
// and nothing else, so that an entry cannot silently never match.
func checkOrigin(origin string) error {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(origin, "/") || origin != strings.ToLower(u.Scheme)+"://"+u.Host {
		return fmt.Errorf("%q is not an origin: write it as a browser sends it, such as https://shop.example.com or http://127.0.0.1:8081", origin)
	}
	return nil
}

// refreshGrace is the configured grace, or its default.
func (h *Handler) refreshGrace() time.Duration {
	if h.RefreshGrace == nil {
		return DefaultRefreshGrace
	}
	return time.Duration(*h.RefreshGrace)
}

// rateLimit is the configured limit with its defaults.
func (h *Handler) rateLimit() (requests int, window time.Duration) {
	requests, window = DefaultRateLimitRequests, DefaultRateLimitWindow
	if h.RateLimit != nil {
		if h.RateLimit.Requests > 0 {
			requests = h.RateLimit.Requests
		}
		window = durationOr(h.RateLimit.Window, window)
	}
	return requests, window
}

func checkBaseURL(name, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("%s %q must be an http(s) URL such as https://api.weixin.qq.com", name, raw)
	}
	return nil
}

// Validate is called after Provision (and by `caddy validate`).
func (h *Handler) Validate() error {
	if h.codec == nil || len(h.apps) == 0 {
		return errors.New("wxauth: not provisioned")
	}
	return nil
}

// Cleanup lets go of the shared state; the last handler to let go stops
// its background work.
func (h *Handler) Cleanup() error {
	if h.platform != nil {
		_, _ = platformServices.Delete(h.platformKey)
	}
	if h.limiter != nil {
		_, _ = limiters.Delete(h.limiterKey)
	}
	if h.state != nil {
		_, err := states.Delete(h.stateKey)
		return err
	}
	return nil
}

// app looks up a configured app by appid.
func (h *Handler) app(appid string) (platform.App, bool) {
	app, ok := h.apps[appid]
	return app, ok
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// verified is what the gate keeps per token it has checked.
type verified struct {
	id      identity.Identity
	expires time.Time
	headers identity.Headers
	// placeholders are id's http.auth.user.* values, ready to set.
	placeholders userPlaceholders
	// fromCookie: the token came in the web login's cookie, not a
	// Bearer header. Never set on cached values.
	fromCookie bool
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
