package httpapi

import (
	"github.com/wxauth/caddy-wxauth/internal/platform"
)

// App is one configured app as the API serves it.
type App struct {
	platform.App
	// Scope is a web app's OAuth scope.
	Scope string
	// NoContentCheck: the operator turned the platform's content check
	// of this app's profiles off.
	NoContentCheck bool
}

// Apps are the configured apps, with their secrets resolved.
type Apps struct {
	byID map[string]App
	// only is the mini program a login body may leave out the appid for,
	// when exactly one is configured (web apps never post to /login).
	only *platform.App
	// web are the web apps in configuration order: the first of a kind is
	// the default for browsers of that kind.
	web       []platform.App
	webScopes map[string]string
}

// NewApps indexes the configured apps, in configuration order.
func NewApps(list []App) *Apps {
	a := &Apps{byID: make(map[string]App, len(list)), webScopes: make(map[string]string)}
	var miniPrograms []platform.App
	for _, app := range list {
		a.byID[app.AppID] = app
		if app.Kind.IsWeb() {
			a.web = append(a.web, app.App)
			a.webScopes[app.AppID] = app.Scope
		} else {
			miniPrograms = append(miniPrograms, app.App)
		}
	}
	if len(miniPrograms) == 1 {
		a.only = &miniPrograms[0]
	}
	return a
}

// Lookup finds a configured app by appid.
func (a *Apps) Lookup(appid string) (platform.App, bool) {
	app, ok := a.byID[appid]
	return app.App, ok
}

// Known reports whether an app is configured.
func (a *Apps) Known(appid string) bool {
	_, ok := a.byID[appid]
	return ok
}

// Web are the web apps, in configuration order.
func (a *Apps) Web() []platform.App { return a.web }

// WebScopes are the web apps' OAuth scopes, by appid.
func (a *Apps) WebScopes() map[string]string { return a.webScopes }

// checksContent reports whether app's profile changes go through the
// platform's content check (the default).
func (a *Apps) checksContent(appid string) bool { return !a.byID[appid].NoContentCheck }

// forLogin picks the mini program a code post names, or the only one.
func (a *Apps) forLogin(appid, prefix string) (platform.App, *apiError) {
	if appid == "" {
		if a.only != nil {
			return *a.only, nil
		}
		return platform.App{}, errInvalidRequest(`"appid" is required: this gateway serves several mini programs`)
	}
	app, ok := a.byID[appid]
	if !ok {
		return platform.App{}, errInvalidRequest(`unknown "appid": it is not configured on this gateway`)
	}
	if app.Kind.IsWeb() {
		return platform.App{}, errInvalidRequest(`"appid" names a web app: web apps log in through GET ` + prefix + `/web/login, not with a code post`)
	}
	return app.App, nil
}
