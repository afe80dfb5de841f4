// Package weblogin is the web login, beside the mini-program login: a
// browser (an official-account page inside WeChat, or a website showing the
// QR code) is sent to the platform's authorize page with a fresh state,
// comes back with a code, and gets a session. The Caddy glue turns its
// answers into cookies and redirects; everything else is here.
package weblogin

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// StateLifetime is how long a browser may take on the authorize page. QR
// login codes live 10 minutes; the state must not die first.
const StateLifetime = 10 * time.Minute

// stateLength is the length of a web login state: 32 characters of
// [A-Za-z0-9] (190 bits), well inside WeChat's 128-byte limit.
const stateLength = 32

// The reasons a web login does not go on; each says what happened, and the
// browser can always start again.
var (
	ErrNoWebApp      = errors.New("no web app is configured: add an app with platform wechat-web or wechat-qr")
	ErrUnknownApp    = errors.New(`unknown "appid": it is not a web app (platform wechat-web or wechat-qr) configured on this gateway`)
	ErrForeignState  = errors.New("this login was not started in this browser (the state does not match)")
	ErrUnknownState  = errors.New("this login state is unknown, expired or already used")
	ErrAppGone       = errors.New("the app this login was started for is no longer configured")
	ErrNotAuthorized = errors.New("the user did not authorize the login (the platform sent no code)")
)

// WebPlatform is the platform's side of the web login. *platform.Client
// implements it.
type WebPlatform interface {
	WebAccessToken(ctx context.Context, app platform.App, code string) (*platform.WebSession, error)
	WebUserInfo(ctx context.Context, app platform.App, ws *platform.WebSession) (*platform.WebUser, error)
}

// Profiles stores what the platform said of the user. *profile.Service
// implements it.
type Profiles interface {
	FromPlatform(ctx context.Context, app platform.App, openid, unionID string, p *store.Profile, sessionLife time.Duration) (*store.User, error)
}

// Flow runs web logins. Fill every field but Now.
type Flow struct {
	// Apps are the web apps, in configuration order: the first of a kind
	// is the default for browsers of that kind.
	Apps []platform.App
	// Scopes are the OAuth scope of each web app, by appid.
	Scopes map[string]string
	// Lookup finds any configured app by appid (a state outlives a reload).
	Lookup   func(appid string) (platform.App, bool)
	Store    *store.Store
	Platform WebPlatform
	Logins   *login.Service
	Profiles Profiles
	// Sandbox: the authorize page is the sandbox's, a plain redirect.
	Sandbox bool
	Now     func() time.Time // nil means time.Now
}

func (f *Flow) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// App picks the web app a login is for: the one named, else by where the
// browser is. Inside WeChat (its user agent says MicroMessenger),
// official-account pages log in silently; elsewhere, a website shows the QR
// code.
func (f *Flow) App(appid, userAgent string) (platform.App, error) {
	if appid != "" {
		app, ok := f.Lookup(appid)
		if !ok || !app.Kind.IsWeb() {
			return platform.App{}, ErrUnknownApp
		}
		return app, nil
	}
	if len(f.Apps) == 0 {
		return platform.App{}, ErrNoWebApp
	}
	want := platform.WeChatQR
	if strings.Contains(userAgent, "MicroMessenger") {
		want = platform.WeChatWeb
	}
	for _, app := range f.Apps {
		if app.Kind == want {
			return app, nil
		}
	}
	return f.Apps[0], nil
}

// Start is a login begun: where to send the browser, and the state to bind
// to it (the glue sets it as a cookie).
type Start struct {
	AuthorizeURL string
	State        string
}

// Begin starts a login of app for a browser that is to land on next
// afterwards (SafeNext is applied): it stores a fresh single-use state and
// builds the authorize page's URL at openBase, returning to callbackURL.
// sandboxUser, in the sandbox only, picks the user the sandbox's page logs
// in.
func (f *Flow) Begin(ctx context.Context, app platform.App, next, openBase, callbackURL, sandboxUser string) (Start, error) {
	state, err := newState()
	if err != nil {
		return Start{}, err
	}
	now := f.now()
	ws := &store.WebState{AppID: app.AppID, Next: SafeNext(next), Expires: now.Add(StateLifetime)}
	if err := f.Store.SaveWebState(ctx, state, ws, now); err != nil {
		return Start{}, err
	}
	target, err := platform.AuthorizeURL(openBase, app, f.Scopes[app.AppID], callbackURL, state)
	if err != nil {
		return Start{}, err
	}
	if f.Sandbox {
		// WeChat wants #wechat_redirect on its authorize page, but the
		// sandbox's page is a plain redirect, and a browser carries a
		// fragment through redirects that have none: it would end up on
		// the final page's URL.
		target, _, _ = strings.Cut(target, "#")
		if sandboxUser != "" {
			target += "&sandbox_user=" + url.QueryEscape(sandboxUser)
		}
	}
	return Start{AuthorizeURL: target, State: state}, nil
}

// Finished is a login back from the platform: the app it was for (known
// once the state is taken, also when the login then fails), where the
// browser goes next, and the new session.
type Finished struct {
	App     platform.App
	Next    string
	Session *login.Result
}

// Finish completes a login the platform sent the browser back from: the
// state must be the one bound to this browser (browserState, from its
// cookie) and never used; then the code is exchanged, the profile fetched
// where the scope gives one, and a session started.
func (f *Flow) Finish(ctx context.Context, browserState, state, code string) (Finished, error) {
	var done Finished
	if state == "" || subtle.ConstantTimeCompare([]byte(browserState), []byte(state)) != 1 {
		return done, ErrForeignState
	}
	ws, err := f.Store.TakeWebState(ctx, state, StateLifetime, f.now())
	if errors.Is(err, store.ErrNotFound) {
		return done, ErrUnknownState
	}
	if err != nil {
		return done, err
	}
	app, ok := f.Lookup(ws.AppID)
	if !ok || !app.Kind.IsWeb() {
		return done, ErrAppGone
	}
	done.App, done.Next = app, ws.Next
	if code == "" {
		return done, ErrNotAuthorized
	}
	done.Session, err = f.exchange(ctx, app, code)
	return done, err
}

// exchange trades a web login code for a session of its user. The
// platform's profile, where the scope gives one, becomes the user's
// profile: it is what the user just agreed to share.
func (f *Flow) exchange(ctx context.Context, app platform.App, code string) (*login.Result, error) {
	ws, err := f.Platform.WebAccessToken(ctx, app, code)
	if err != nil {
		return nil, err
	}
	var profile *store.Profile
	unionID := ws.UnionID
	if ws.ProfileGranted() {
		wu, err := f.Platform.WebUserInfo(ctx, app, ws)
		if err != nil {
			return nil, err
		}
		if unionID == "" {
			unionID = wu.UnionID
		}
		if wu.Nickname != "" {
			profile = &store.Profile{Nickname: wu.Nickname, AvatarURL: wu.HeadImgURL}
		}
	}
	user, err := f.Profiles.FromPlatform(ctx, app, ws.OpenID, unionID, profile, f.Logins.RefreshTTL)
	if err != nil {
		return nil, err
	}
	return f.Logins.StartSession(ctx, app, user)
}

// Resume trades a browser's refresh cookie for a new session, the fast
// path back that needs no trip to the platform. Two tabs arriving with one
// cookie at once are a retry within the refresh grace, and both come back
// with the same session.
func (f *Flow) Resume(ctx context.Context, refreshToken string) (*login.Result, error) {
	return f.Logins.Refresh(ctx, refreshToken)
}

// StartOver reports whether a failed Resume means the browser must log in
// at the platform again (its refresh token is spent, expired, revoked or
// unknown), rather than that the gateway failed, in which case the
// browser's session may be fine and it must keep its cookie.
func StartOver(err error) bool {
	return errors.Is(err, login.ErrRevoked) || errors.Is(err, login.ErrRefreshExpired) || errors.Is(err, login.ErrRefreshInvalid)
}

// SafeNext returns next if it is a path on this site, and "/" otherwise:
// the web login must never become an open redirect. A path must start
// with one "/" (not "//" or "/\", which browsers read as another host),
// and hold no scheme, host or control characters.
func SafeNext(next string) string {
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
func newState() (string, error) { return token.RandomAlnum(stateLength) }
