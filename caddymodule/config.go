package caddymodule

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wxauth/internal/httpapi"
	"github.com/wxauth/caddy-wxauth/internal/token"
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
