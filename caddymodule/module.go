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
)

func init() {
	caddy.RegisterModule(Handler{})
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
