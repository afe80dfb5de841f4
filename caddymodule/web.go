package caddymodule

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// webStateLifetime is how long a browser may take on the authorize page.
// QR login codes live 10 minutes; the state must not die first.
const webStateLifetime = 10 * time.Minute

// stateLength is the length of a web login state: 32 characters of
// [A-Za-z0-9] (190 bits), well inside WeChat's 128-byte limit.
const stateLength = 32

func (h *Handler) serveWeb(w http.ResponseWriter, r *http.Request, rest string) {
	switch {
	case rest == "login":
		h.serveWebLogin(w, r)
	case rest == "callback":
		h.serveWebCallback(w, r)
	case h.Sandbox && strings.HasPrefix(rest, "sandbox/connect/"):
		// The sandbox's stand-in for open.weixin.qq.com: the browser lands
		// here and goes straight back to the callback with a code. Only to
		// this gateway's callback, as WeChat only returns to the app's own
		// domain: the page must not become an open redirect.
		if r.URL.Query().Get("redirect_uri") != h.siteURL(r)+h.prefix+"/web/callback" {
			writeError(w, errInvalidRequest("the sandbox authorize page only returns to this gateway's "+h.prefix+"/web/callback"))
			return
		}
		fakeplatform.Sandbox().Authorize(w, r)
	default:
		writeError(w, errNotFound())
	}
}

// serveWebLogin starts a web login: back to the page at once if the
// browser holds a refresh token that still works, otherwise off to the
// platform's authorize page with a fresh single-use state.
func (h *Handler) serveWebLogin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, errMethod("GET, HEAD"))
		return
	}
	q := r.URL.Query()
	next := safeNext(q.Get("next"))
	app, e := h.webAppFor(q.Get("appid"), r)
	if e != nil {
		writeError(w, e)
		return
	}

	if c, err := r.Cookie(refreshCookie); err == nil && c.Value != "" {
		// Two tabs arriving with one cookie: the second is a retry within
		// the grace and comes back with the same session.
		res, e := h.refresh(r, c.Value)
		if e == nil {
			h.setSessionCookies(w, res)
			redirect(w, next)
			return
		}
		if e.Status == http.StatusInternalServerError {
			// Storage failed: the session may be fine, and the browser must
			// keep its cookie to try again.
			writeError(w, e)
			return
		}
		// Spent, expired or revoked: log in afresh.
		h.clearRefreshCookie(w)
	}

	state, err := newState()
	if err != nil {
		h.logger.Error("web login failed", zap.Error(err))
		writeError(w, errInternal())
		return
	}
	ws := &store.WebState{AppID: app.AppID, Next: next, Expires: time.Now().Add(webStateLifetime)}
	if err := h.store.SaveWebState(r.Context(), state, ws); err != nil {
		h.logger.Error("web login failed", zap.String("appid", app.AppID), zap.Error(err))
		writeError(w, errInternal())
		return
	}
	target, err := platform.AuthorizeURL(h.openBase(r), app, h.webScopes[app.AppID], h.siteURL(r)+h.prefix+"/web/callback", state)
	if err != nil {
		h.logger.Error("web login failed", zap.String("appid", app.AppID), zap.Error(err))
		writeError(w, errInternal())
		return
	}
	if h.Sandbox {
		// WeChat wants #wechat_redirect on its authorize page, but the
		// sandbox's page is a plain redirect, and a browser carries a
		// fragment through redirects that have none: it would end up on
		// the final page's URL.
		target, _, _ = strings.Cut(target, "#")
		if user := q.Get("sandbox_user"); user != "" {
			// Lets a developer log in as someone else in the sandbox.
			target += "&sandbox_user=" + url.QueryEscape(user)
		}
	}
	setCookie(w, stateCookie, state, h.prefix+"/web/callback", webStateLifetime)
	redirect(w, target)
}

// serveWebCallback finishes a web login: the state must be the one this
// browser was given and never used, then the code is exchanged, the
// profile fetched (snsapi_userinfo, QR login), a session started and its
// cookies set.
func (h *Handler) serveWebCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, errMethod(http.MethodGet))
		return
	}
	q := r.URL.Query()
	state, code := q.Get("state"), q.Get("code")
	// Whatever happens next, this state is done with.
	if _, err := r.Cookie(stateCookie); err == nil {
		clearCookie(w, stateCookie, h.prefix+"/web/callback")
	}

	c, err := r.Cookie(stateCookie)
	if state == "" || err != nil || subtle.ConstantTimeCompare([]byte(c.Value), []byte(state)) != 1 {
		writeError(w, errInvalidRequest("this login was not started in this browser (the state does not match); start again at "+h.prefix+"/web/login"))
		return
	}
	ws, err := h.store.TakeWebState(r.Context(), state, time.Now())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, errInvalidRequest("this login state is unknown, expired or already used; start again at "+h.prefix+"/web/login"))
		return
	}
	if err != nil {
		h.logger.Error("web login failed", zap.Error(err))
		writeError(w, errInternal())
		return
	}
	app, ok := h.app(ws.AppID)
	if !ok || !app.Kind.IsWeb() {
		writeError(w, errInvalidRequest("the app this login was started for is no longer configured; start again at "+h.prefix+"/web/login"))
		return
	}
	if code == "" {
		writeError(w, errInvalidRequest("the user did not authorize the login (the platform sent no code); start again at "+h.prefix+"/web/login"))
		return
	}

	res, err := h.webLogin(r, app, code)
	if err != nil {
		h.countLogin(app.AppID, h.writeFailure(w, r, "login", app, "", err))
		return
	}
	h.countLogin(app.AppID, "ok")
	h.logger.Info("login",
		zap.String("appid", app.AppID),
		zap.String("openid", res.User.OpenID),
		zap.String("source", res.Session.Source),
		zap.String("result", "ok"))
	h.setSessionCookies(w, res)
	redirect(w, ws.Next)
}

// webLogin exchanges a web login code and starts a session for its user.
// The platform's profile, where the scope gives one, becomes the user's
// profile: it is what the user just agreed to share.
func (h *Handler) webLogin(r *http.Request, app platform.App, code string) (*login.Result, error) {
	ctx := r.Context()
	ws, err := h.platform.Client.WebAccessToken(ctx, app, code)
	if err != nil {
		return nil, err
	}
	var profile *store.Profile
	unionID := ws.UnionID
	if ws.ProfileGranted() {
		wu, err := h.platform.Client.WebUserInfo(ctx, app, ws)
		if err != nil {
			return nil, err
		}
		if unionID == "" {
			unionID = wu.UnionID
		}
		if nickname := wu.Nickname; nickname != "" {
			profile = &store.Profile{Nickname: nickname, AvatarURL: wu.HeadImgURL}
		}
	}
	user, err := h.profiles.FromPlatform(ctx, app, ws.OpenID, unionID, profile)
	if err != nil {
		return nil, err
	}
	return h.logins.StartSession(ctx, app, user)
}

// webAppFor picks the web app a login is for: the one named, else by where
// the browser is. Inside WeChat, official-account pages log in silently;
// elsewhere, a website shows the QR code.
func (h *Handler) webAppFor(appid string, r *http.Request) (platform.App, *apiError) {
	if appid != "" {
		app, ok := h.apps[appid]
		if !ok || !app.Kind.IsWeb() {
			return platform.App{}, errInvalidRequest(`unknown "appid": it is not a web app (platform wechat-web or wechat-qr) configured on this gateway`)
		}
		return app, nil
	}
	if len(h.webApps) == 0 {
		return platform.App{}, errInvalidRequest("no web app is configured: add an app with platform wechat-web or wechat-qr")
	}
	want := platform.WeChatQR
	if strings.Contains(r.UserAgent(), "MicroMessenger") {
		want = platform.WeChatWeb
	}
	for _, app := range h.webApps {
		if app.Kind == want {
			return app, nil
		}
	}
	return h.webApps[0], nil
}

// webLoginRedirect answers a browser the gate refuses with a trip through
// the web login and back, where that makes sense: a page load (GET or
// HEAD asking for HTML) with no Authorization header, on a gateway with a
// web app. API clients keep getting the 401.
func (h *Handler) webLoginRedirect(w http.ResponseWriter, r *http.Request) bool {
	if len(h.webApps) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) ||
		r.Header.Get("Authorization") != "" || !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return false
	}
	redirect(w, h.prefix+"/web/login?next="+url.QueryEscape(r.URL.RequestURI()))
	return true
}

func redirect(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusFound)
}

// safeNext returns next if it is a path on this site, and "/" otherwise:
// the web login must never become an open redirect. A path must start
// with one "/" (not "//" or "/\", which browsers read as another host),
// and hold no scheme, host or control characters.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || len(next) > 2048 {
		return "/"
	}
	if len(next) > 1 && (next[1] == '/' || next[1] == '\\') {
		return "/"
	}
	if strings.ContainsFunc(next, func(r rune) bool { return r < ' ' || r == 0x7f || r == '\\' }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}

// newState returns a fresh random state for the authorize page.
func newState() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [stateLength]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	for i := range b {
		// 256 = 4*62 + 8: the slight bias toward the first 8 letters costs
		// well under a bit of the state's 190.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:]), nil
}

// siteURL is the scheme and host this request came to, which the platform
// sends the browser back to.
func (h *Handler) siteURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// openBase is where authorize pages are: open_base, the sandbox's own
// stand-in under the endpoint prefix, or the platform.
func (h *Handler) openBase(r *http.Request) string {
	switch {
	case h.OpenBase != "":
		return h.OpenBase
	case h.Sandbox:
		return h.siteURL(r) + h.prefix + "/web/sandbox"
	}
	return platform.DefaultOpenBase
}
