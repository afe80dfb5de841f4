// Package caddymodule is the Caddy glue of caddy-wxauth: the
// http.handlers.wxauth module and its Caddyfile directive, the
// http.authentication.providers.wxauth provider, the admin API's endpoint,
// and the HTTP face of the login endpoints and the identity gate. The work
// itself lives in the plain packages under internal/ (see ARCHITECTURE.md).
package caddymodule

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxauth/caddy-wxauth/internal/httpapi"
)

func init() {
	caddy.RegisterModule(Handler{})
}

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
	held []pooled // what this configuration holds in the node's pools
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wxauth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision checks the configuration and builds its services.
func (h *Handler) Provision(ctx caddy.Context) error {
	if err := h.checkConfig(); err != nil {
		return fmt.Errorf("wxauth: %w", err)
	}
	api, held, err := build(ctx, h)
	if err != nil {
		return fmt.Errorf("wxauth: %w", err)
	}
	h.api, h.held = api, held
	return nil
}

// Validate is called after Provision (and by `caddy validate`).
func (h *Handler) Validate() error {
	if h.api == nil {
		return errors.New("wxauth: not provisioned")
	}
	return nil
}

// Cleanup lets go of what this configuration holds in the node's pools;
// the last configuration to let go of one stops its background work.
func (h *Handler) Cleanup() error {
	err := release(h.held)
	h.held = nil
	return err
}

// ServeHTTP serves the endpoints under the prefix and gates the rest.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.api.Owns(r) {
		h.api.ServeHTTP(w, r)
		return nil
	}
	v, ok := h.api.Gate(w, r)
	if !ok {
		return nil // refused, and answered
	}
	if v != nil {
		setPlaceholders(r, v)
	}
	return next.ServeHTTP(w, r)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
