package httpapi

import (
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// webEndpoints are the web login's: GET web/login sends the browser to the
// platform (or straight back, with a live refresh cookie), GET
// web/callback finishes the login. The flow is weblogin's; here are its
// cookies and redirects.
type webEndpoints struct{ svc *API }

func (e webEndpoints) login(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	q := r.URL.Query()
	next := weblogin.SafeNext(q.Get("next"))
	// A browser with a live refresh cookie comes straight back, whichever
	// way its cookie session began: a web login, a web-view handoff or a
	// scan login (the last two need no web app).
	if c, err := r.Cookie(refreshCookie); err == nil && c.Value != "" {
		res, err := s.refresh(r, c.Value) // logged and counted like POST refresh
		if err == nil {
			s.setSessionCookies(w, res)
			redirect(w, next)
			return
		}
		if !weblogin.StartOver(err) {
			// Storage failed: the session may be fine, and the browser must
			// keep its cookie to try again.
			writeError(w, failureOf(err).answer)
			return
		}
		// Ended or unknown: the browser logs in anew (or, with no web
		// app, gets 401s for a while instead of coming back here).
		s.clearSessionCookies(w)
	}
	app, err := s.web.App(q.Get("appid"), r.UserAgent())
	if err != nil {
		writeError(w, failureOf(err).answer)
		return
	}
	start, err := s.web.Begin(r.Context(), app, next, s.openBaseFor(r), s.callbackURL(r), s.sandboxUser(r))
	if err != nil {
		s.fail(w, "web login", app.AppID, "", err)
		return
	}
	setCookie(w, stateCookie, start.State, s.prefix+"/web/callback", weblogin.StateLifetime)
	redirect(w, start.AuthorizeURL)
}

func (e webEndpoints) callback(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	q := r.URL.Query()
	browserState := ""
	if c, err := r.Cookie(stateCookie); err == nil {
		browserState = c.Value
		// Whatever happens next, this state is done with.
		clearCookie(w, stateCookie, s.prefix+"/web/callback")
	}
	done, err := s.web.Finish(r.Context(), browserState, q.Get("state"), q.Get("code"))
	if err != nil {
		result := s.fail(w, "login", done.App.AppID, "", err)
		if done.App.AppID != "" && !webLoginError(err) {
			s.countLogin(done.App.AppID, result) // the platform's answer, or ours
		}
		return
	}
	res := done.Session
	s.countLogin(done.App.AppID, "ok")
	s.logResult(zapcore.InfoLevel, "login", done.App.AppID, res.User.OpenID, "ok", zap.String("source", res.Session.Source))
	s.setSessionCookies(w, res)
	redirect(w, done.Next)
}

// sandboxAuthorize is the sandbox's stand-in for open.weixin.qq.com: the
// browser lands here and goes straight back to the callback with a code.
// Only to this gateway's callback, as WeChat only returns to the app's own
// domain: the page must not become an open redirect.
func (e webEndpoints) sandboxAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("redirect_uri") != e.svc.callbackURL(r) {
		writeError(w, errInvalidRequest("the sandbox authorize page only returns to this gateway's "+e.svc.prefix+"/web/callback"))
		return
	}
	e.svc.sandboxPlatform.Authorize(w, r)
}

// webLoginRedirect answers a browser the gate refuses with a trip through
// the web login and back, where that makes sense: a page load (GET or
// HEAD asking for HTML) with no Authorization header, on a gateway with a
// web app, or from a browser that has a cookie session (begun by a
// web-view handoff or a scan login: its refresh cookie renews it there).
// API clients keep getting the 401.
func (s *API) webLoginRedirect(w http.ResponseWriter, r *http.Request) bool {
	_, cookieErr := r.Cookie(tokenCookie)
	if (len(s.apps.web) == 0 && cookieErr != nil) || (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		r.Header.Get("Authorization") != "" || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return false
	}
	redirect(w, s.prefix+"/web/login?next="+url.QueryEscape(r.URL.RequestURI()))
	return true
}

// siteURL is the scheme and host this request came to, which the platform
// sends the browser back to.
func siteURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *API) callbackURL(r *http.Request) string { return siteURL(r) + s.prefix + "/web/callback" }

// openBaseFor is where authorize pages are: open_base, the sandbox's own
// stand-in under the endpoint prefix, or the platform.
func (s *API) openBaseFor(r *http.Request) string {
	switch {
	case s.openBase != "":
		return s.openBase
	case s.sandbox:
		return siteURL(r) + s.prefix + "/web/sandbox"
	}
	return platform.DefaultOpenBase
}

// sandboxUser lets a developer log in as someone else in the sandbox.
func (s *API) sandboxUser(r *http.Request) string {
	if !s.sandbox {
		return ""
	}
	return r.URL.Query().Get("sandbox_user")
}

// avatarURLBase is the start of an uploaded avatar's URL: the avatar_base
// option, or else the scheme and host the upload came to.
func (s *API) avatarURLBase(r *http.Request) string {
	if s.avatarBase != "" {
		return s.avatarBase
	}
	return siteURL(r) + s.prefix + "/avatar/"
}

func redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}
