package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

func init() {
	caddy.RegisterModule(Provider{})
}

// Provider offers the wxauth gate to Caddy's authentication handler, next
// to its other providers:
//
//	{"handler": "authentication", "providers": {"wxauth": {"apps": [...], ...}}}
//
// It takes the wxauth handler's configuration and checks tokens exactly as
// the handler's gate does: forged identity headers go, a valid token's
// verified ones come, and the user's id (the OpenID) and appid, unionid,
// nickname and source become the http.auth.user.* placeholders. It serves
// no endpoints: a route with the wxauth handler under the prefix logs users
// in, on the same storage (or the same signing_key).
//
// A request it refuses gets the WWW-Authenticate challenge, and Caddy's
// authentication handler answers 401 (handle_errors can shape it).
type Provider struct {
	Handler
}

// CaddyModule returns the Caddy module information.
func (Provider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.authentication.providers.wxauth",
		New: func() caddy.Module { return new(Provider) },
	}
}

// Authenticate checks the request's access token.
func (p *Provider) Authenticate(w http.ResponseWriter, r *http.Request) (caddyauth.User, bool, error) {
	v, ok := p.api.Authenticate(w, r)
	if !ok {
		return caddyauth.User{}, false, nil
	}
	id := v.Identity
	return caddyauth.User{ID: id.OpenID, Metadata: map[string]string{
		"openid":   id.OpenID,
		"appid":    id.AppID,
		"unionid":  id.UnionID,
		"nickname": id.Nickname,
		"source":   id.Source,
	}}, true, nil
}

// Interface guards
var (
	_ caddy.Provisioner       = (*Provider)(nil)
	_ caddy.CleanerUpper      = (*Provider)(nil)
	_ caddyauth.Authenticator = (*Provider)(nil)
)
