package caddymodule

import (
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wxauth/internal/gate"
)

// userPlaceholders are the values of the http.auth.user.* placeholders
// for one identity. They are boxed once, when the token is verified, so
// that setting them on every request of a cached token allocates nothing
// (a string stored in an interface is otherwise copied to the heap).
type userPlaceholders struct {
	openID, appID, unionID, nickname, source any
}

// prepareVerified boxes a newly verified token's placeholders (the domain
// gate's Prepare hook): the gate keeps them with the token in its cache.
func prepareVerified(v *gate.Verified) {
	id := &v.Identity
	v.Extra = &userPlaceholders{
		openID:   id.OpenID,
		appID:    id.AppID,
		unionID:  id.UnionID,
		nickname: id.Nickname,
		source:   id.Source,
	}
}

// setPlaceholders sets the http.auth.user.* placeholders of a request the
// gate let through, for the directives after it (log, header, ...).
func setPlaceholders(r *http.Request, v *gate.Verified) {
	p := v.Extra.(*userPlaceholders)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", p.openID)
	repl.Set("http.auth.user.openid", p.openID)
	repl.Set("http.auth.user.appid", p.appID)
	repl.Set("http.auth.user.unionid", p.unionID)
	repl.Set("http.auth.user.nickname", p.nickname)
	repl.Set("http.auth.user.source", p.source)
}
