package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI adds the operators' endpoints of wxauth to Caddy's admin API:
//
//	POST /wxauth/users/<appid>/<openid>/logout
//
// ends every session of that user (a stolen phone, a banned account), on
// every node sharing the storage within revocation_sync. Caddy loads every
// admin.api module by itself; there is nothing to configure.
type AdminAPI struct {
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wxauth",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision keeps the logger.
func (a *AdminAPI) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	return nil
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/wxauth/users/", Handler: caddy.AdminHandlerFunc(a.serveUsers)}}
}

func (a *AdminAPI) serveUsers(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/wxauth/users/")
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[2] != "logout" {
		return caddy.APIError{HTTPStatus: http.StatusNotFound,
			Err: errors.New("not found; the wxauth admin endpoint is POST /wxauth/users/<appid>/<openid>/logout")}
	}
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed; use POST")}
	}
	appid, openid := parts[0], parts[1]
	if !valid.ID(appid) || !valid.ID(openid) {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest,
			Err: errors.New("the appid and openid must be letters, digits, '_' or '-', as the platform gives them")}
	}
	// The storage of the config in force now: the admin API outlives the
	// config it was loaded with, and an old config's storage may be closed.
	storage := caddy.ActiveContext().Storage()
	if storage == nil {
		return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: errors.New("no config is running; load one first")}
	}
	logins := &login.Service{Store: store.NewStore(storage), AccessTTL: DefaultAccessTTL}
	n, err := logins.LogoutUser(r.Context(), appid, openid)
	if err != nil {
		a.logger.Error("admin logout failed", zap.String("appid", appid), zap.String("openid", openid), zap.Error(err))
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError,
			Err: fmt.Errorf("ended %d sessions, then storage failed (see the log); try again: what is ended stays ended", n)}
	}
	a.logger.Info("logout",
		zap.String("appid", appid),
		zap.String("openid", openid),
		zap.Bool("everywhere", true),
		zap.Int("sessions_ended", n),
		zap.String("by", "admin API"),
		zap.String("result", "ok"))
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]int{"sessions_ended": n})
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
