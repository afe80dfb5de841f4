package caddymodule

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wxauth/internal/httpapi"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/token"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

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

	api  *httpapi.API
	held []func() error // lets go of what this configuration holds in the node's pools
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
	// Alipay and Baidu have no image check: their avatars are never
	// checked, and the startup log says so.
	ContentCheck *bool `json:"content_check,omitempty"`

	// PrivateKey is the app's own RSA private key (PEM, or the bare base64
	// Alipay's key tool writes), best given as {file./path}: Alipay apps
	// sign every request with it (required); Douyin apps decrypt phone
	// numbers with it (without it, /phone refuses Douyin users).
	PrivateKey string `json:"private_key,omitempty"`

	// AlipayPublicKey is Alipay's public key for the app (支付宝公钥 in
	// the console, not the app's own), best given as {file./path}: every
	// answer's signature is checked with it. Alipay apps only; required.
	AlipayPublicKey string `json:"alipay_public_key,omitempty"`
	// ScanLogin turns on website login by scanning this WeChat mini
	// program's own code (POST <endpoints>/scan and the rest).
	ScanLogin *ScanLogin `json:"scan_login,omitempty"`
}

// ScanLogin is the mini-program code a website shows for scan login: the
// page of the mini program it opens, with the ticket as its scene.
type ScanLogin struct {
	// Page is the mini-program page, such as pages/scan/index (no
	// leading "/", no query). Default: the app's home page.
	Page string `json:"page,omitempty"`
	// EnvVersion is the version the code opens: release (the default),
	// trial or develop.
	EnvVersion string `json:"env_version,omitempty"`
}

// check finds the mistakes of a scan_login line.
func (sl *ScanLogin) check() error {
	switch {
	case strings.HasPrefix(sl.Page, "/"):
		return fmt.Errorf("scan_login page %q: write it without the leading '/', such as pages/scan/index", sl.Page)
	case strings.ContainsAny(sl.Page, "?#% \t"):
		return fmt.Errorf("scan_login page %q: a page path only, without a query (the ticket is the code's scene)", sl.Page)
	case len(sl.Page) > 128:
		return fmt.Errorf("scan_login page %q is too long", sl.Page)
	}
	switch sl.EnvVersion {
	case "", platform.EnvRelease, platform.EnvTrial, platform.EnvDevelop:
		return nil
	}
	return fmt.Errorf("scan_login env_version %q: want release, trial or develop", sl.EnvVersion)
}

// webScope is the OAuth scope a web app asks for: snsapi_login for QR
// login, snsapi_base (a silent login) unless the operator asked for
// snsapi_userinfo on official-account pages.
func (ac AppConfig) webScope() string {
	switch kind, _ := ac.kind(); {
	case kind == platform.WeChatQR:
		return platform.ScopeLogin
	case ac.Scope != "":
		return ac.Scope
	}
	return platform.ScopeBase
}

// kind is the app's platform; wechat when none is set.
func (ac AppConfig) kind() (platform.Kind, error) {
	if ac.Platform == "" {
		return platform.WeChat, nil
	}
	return platform.ParseKind(ac.Platform)
}

// check finds the mistakes of one app's configuration.
func (ac AppConfig) check(sandbox bool) error {
	if !valid.ID(ac.AppID) {
		return fmt.Errorf("appid %q is not valid: use letters, digits, '_' or '-' (e.g. wx1234567890abcdef)", ac.AppID)
	}
	kind, err := ac.kind()
	if err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	switch {
	case ac.Scope != "" && kind == platform.WeChatQR:
		return fmt.Errorf("app %s: a wechat-qr app always uses scope snsapi_login; remove scope", ac.AppID)
	case ac.Scope != "" && kind != platform.WeChatWeb:
		return fmt.Errorf("app %s: scope applies only to wechat-web apps (official-account pages)", ac.AppID)
	case ac.Scope != "" && ac.Scope != platform.ScopeBase && ac.Scope != platform.ScopeUserInfo:
		return fmt.Errorf("app %s: scope %q: want snsapi_base or snsapi_userinfo", ac.AppID, ac.Scope)
	}
	if err := ac.checkKeys(kind, sandbox); err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	if ac.ScanLogin != nil {
		if kind != platform.WeChat {
			return fmt.Errorf("app %s: scan_login needs a WeChat mini program (platform wechat): only they have mini-program codes", ac.AppID)
		}
		if err := ac.ScanLogin.check(); err != nil {
			return fmt.Errorf("app %s: %w", ac.AppID, err)
		}
	}
	if !sandbox && ac.Secret == "" && kind != platform.Alipay {
		return fmt.Errorf("app %s has no secret; set `secret` (e.g. secret {env.WX_SECRET}) or use `sandbox` for development", ac.AppID)
	}
	if err := checkBaseURL("api_base", ac.APIBase); err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	return nil
}

// checkKeys finds the mistakes of an app's keys that need nothing outside
// the config: keys on a platform that has none, Alipay's missing ones. A
// key given literally is parsed here; a placeholder when it is resolved.
func (ac AppConfig) checkKeys(kind platform.Kind, sandbox bool) error {
	switch {
	case ac.PrivateKey != "" && kind != platform.Alipay && kind != platform.Douyin:
		return errors.New("private_key applies only to alipay and douyin apps")
	case ac.AlipayPublicKey != "" && kind != platform.Alipay:
		return errors.New("alipay_public_key applies only to alipay apps")
	case kind == platform.Alipay && ac.Secret != "":
		return errors.New("alipay apps have no secret: they sign with private_key and check answers with alipay_public_key; remove secret")
	case kind == platform.Alipay && !sandbox && (ac.PrivateKey == "" || ac.AlipayPublicKey == ""):
		return errors.New("an alipay app needs private_key (the app's RSA2 private key) and alipay_public_key " +
			"(Alipay's public key from the console), e.g. private_key {file./etc/wxauth/alipay_app_private.pem}; or use `sandbox` for development")
	}
	if !sandbox && !strings.Contains(ac.PrivateKey, "{") {
		if _, err := privateKeyOf(ac.PrivateKey); err != nil {
			return err
		}
	}
	if !sandbox && !strings.Contains(ac.AlipayPublicKey, "{") {
		if _, err := publicKeyOf(ac.AlipayPublicKey); err != nil {
			return err
		}
	}
	return nil
}

// privateKeyOf parses a resolved private_key; "" is none. Its error says
// what is wrong, never what the key is.
func privateKeyOf(value string) (*rsa.PrivateKey, error) {
	if value == "" {
		return nil, nil
	}
	key, err := platform.ParsePrivateKey(value)
	if err != nil {
		return nil, fmt.Errorf("private_key is not an RSA private key (PEM, PKCS#1 or PKCS#8, or its bare base64): %v", err)
	}
	return key, nil
}

// publicKeyOf parses a resolved alipay_public_key; "" is none.
func publicKeyOf(value string) (*rsa.PublicKey, error) {
	if value == "" {
		return nil, nil
	}
	key, err := platform.ParsePublicKey(value)
	if err != nil {
		return nil, fmt.Errorf("alipay_public_key is not an RSA public key (PEM, or its bare base64 as Alipay's console shows it): %v", err)
	}
	return key, nil
}

// checkConfig finds the mistakes that need nothing outside the config. It runs from
// Provision, so `caddy validate` and `caddy run` report them alike.
func (h *Handler) checkConfig() error {
	if len(h.Apps) == 0 {
		return errors.New("no app configured; add `app <appid> { secret ... }` (or `app <appid>` with `sandbox`)")
	}
	seen := make(map[string]bool, len(h.Apps))
	for _, ac := range h.Apps {
		if err := ac.check(h.Sandbox); err != nil {
			return err
		}
		if seen[ac.AppID] {
			return fmt.Errorf("app %s is configured twice", ac.AppID)
		}
		seen[ac.AppID] = true
	}
	if h.Sandbox && h.APIBase != "" {
		return errors.New("sandbox and api_base both set: sandbox answers every platform call in-process, so remove one of them")
	}
	if h.Sandbox && h.OpenBase != "" {
		return errors.New("sandbox and open_base both set: sandbox serves its own authorize page, so remove one of them")
	}
	for _, base := range [][2]string{{"api_base", h.APIBase}, {"open_base", h.OpenBase}, {"avatar_base", h.AvatarBase}} {
		if err := checkBaseURL(base[0], base[1]); err != nil {
			return err
		}
	}
	if h.Endpoints != "" && (!strings.HasPrefix(h.Endpoints, "/") || strings.ContainsAny(h.Endpoints, "?#* {}") || strings.TrimSuffix(h.Endpoints, "/") == "") {
		return fmt.Errorf("endpoints %q must be a path prefix such as /wx or /auth/wx", h.Endpoints)
	}
	if h.SigningKey != "" && !strings.Contains(h.SigningKey, "{") && len(h.SigningKey) < minSigningKeyLength {
		return fmt.Errorf("signing_key is %d bytes; it must be at least %d bytes of random data (e.g. openssl rand -base64 48)", len(h.SigningKey), minSigningKeyLength)
	}
	if err := h.checkDurations(); err != nil {
		return err
	}
	if h.TokenCacheBytes < 0 {
		return errors.New("token_cache_bytes must be positive")
	}
	if rl := h.RateLimit; rl != nil && !rl.Off && (rl.Requests < 0 || rl.Window < 0) {
		return errors.New("rate_limit: requests and window must be positive (e.g. rate_limit 60 1m), or rate_limit off")
	}
	if h.PlatformConcurrency < 0 {
		return errors.New("platform_concurrency must be positive")
	}
	for _, origin := range h.TrustedOrigins {
		if err := checkOrigin(origin); err != nil {
			return fmt.Errorf("trusted_origins: %w", err)
		}
	}
	return nil
}

func (h *Handler) checkDurations() error {
	for _, d := range []struct {
		name  string
		value caddy.Duration
	}{{"access_ttl", h.AccessTTL}, {"refresh_ttl", h.RefreshTTL}, {"platform_timeout", h.PlatformTimeout},
		{"revocation_sync", h.RevocationSync}, {"sweep_interval", h.SweepInterval}} {
		if d.value < 0 {
			return fmt.Errorf("%s must be positive", d.name)
		}
	}
	switch {
	case h.AccessTTL > 0 && h.AccessTTL < caddy.Duration(time.Second):
		return errors.New("access_ttl must be at least 1s")
	case h.refreshTTL() < h.accessTTL():
		return errors.New("refresh_ttl must not be shorter than access_ttl")
	case h.RevocationSync > 0 && h.RevocationSync < caddy.Duration(100*time.Millisecond):
		return errors.New("revocation_sync must be at least 100ms (every sync lists the revocations in storage)")
	case h.SweepInterval > 0 && h.SweepInterval < caddy.Duration(time.Second):
		return errors.New("sweep_interval must be at least 1s")
	case h.RefreshGrace != nil && (*h.RefreshGrace < 0 || time.Duration(*h.RefreshGrace) > h.refreshTTL()):
		return errors.New("refresh_grace must be between 0 (off) and refresh_ttl; the default is 30s")
	}
	return nil
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

// The configured values with their defaults.

func (h *Handler) prefix() string {
	if p := strings.TrimSuffix(h.Endpoints, "/"); p != "" {
		return p
	}
	return DefaultEndpoints
}

func (h *Handler) accessTTL() time.Duration  { return durationOr(h.AccessTTL, DefaultAccessTTL) }
func (h *Handler) refreshTTL() time.Duration { return durationOr(h.RefreshTTL, DefaultRefreshTTL) }

func (h *Handler) refreshGrace() time.Duration {
	if h.RefreshGrace == nil {
		return DefaultRefreshGrace
	}
	return time.Duration(*h.RefreshGrace)
}

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

func (h *Handler) platformConcurrency() int {
	if h.PlatformConcurrency > 0 {
		return h.PlatformConcurrency
	}
	return DefaultPlatformConcurrency
}

func (h *Handler) tokenCacheBytes() int64 {
	if h.TokenCacheBytes > 0 {
		return h.TokenCacheBytes
	}
	return defaultTokenCacheBytes
}

func durationOr(d caddy.Duration, def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}
