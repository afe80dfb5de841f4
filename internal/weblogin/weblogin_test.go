package weblogin

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

var (
	mini = platform.App{AppID: "wxmini00000001", Kind: platform.WeChat}
	web  = platform.App{AppID: "wxweb000000001", Kind: platform.WeChatWeb}
	qr   = platform.App{AppID: "wxqr0000000001", Kind: platform.WeChatQR}
)

// fakeWeb answers the web login's two calls: a code is its user's openid
// ("o-"+code); the scope grants a profile unless the code starts "base".
type fakeWeb struct {
	mu    sync.Mutex
	codes []string
	err   error
}

func (f *fakeWeb) WebAccessToken(_ context.Context, app platform.App, code string) (*platform.WebSession, error) {
	f.mu.Lock()
	f.codes = append(f.codes, code)
	f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	scope := platform.ScopeUserInfo
	if strings.HasPrefix(code, "base") {
		scope = platform.ScopeBase
	}
	return &platform.WebSession{OpenID: "o-" + code, AccessToken: "web-token", Scope: scope}, nil
}

func (f *fakeWeb) WebUserInfo(_ context.Context, app platform.App, ws *platform.WebSession) (*platform.WebUser, error) {
	return &platform.WebUser{OpenID: ws.OpenID, UnionID: "u-" + ws.OpenID, Nickname: "Web " + ws.OpenID, HeadImgURL: "https://thirdwx.qlogo.cn/a/132"}, nil
}

func newFlow(t *testing.T) (*Flow, *fakeWeb) {
	t.Helper()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	records := store.NewStore(storage)
	codec, err := token.NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-web-test"))
	if err != nil {
		t.Fatal(err)
	}
	apps := map[string]platform.App{mini.AppID: mini, web.AppID: web, qr.AppID: qr}
	lookup := func(appid string) (platform.App, bool) { a, ok := apps[appid]; return a, ok }
	pf := &fakeWeb{}
	return &Flow{
		Apps:     []platform.App{web, qr},
		Scopes:   map[string]string{web.AppID: platform.ScopeUserInfo},
		Lookup:   lookup,
		Store:    records,
		Platform: pf,
		Logins: &login.Service{Store: records, Codec: codec, AccessTTL: time.Hour, RefreshTTL: 24 * time.Hour,
			RefreshGrace: 30 * time.Second, Apps: lookup, Revocations: store.NewRevocations()},
		Profiles: &profile.Service{Users: records, Avatars: avatar.NewStore(storage)},
	}, pf
}

const callback = "https://gw.example/wx/web/callback"

func TestApp(t *testing.T) {
	f, _ := newFlow(t)
	for _, tc := range []struct {
		appid, ua string
		want      platform.App
		err       error
	}{
		{"", "Mozilla/5.0 MicroMessenger/8.0.50", web, nil},
		{"", "Mozilla/5.0 Firefox/130.0", qr, nil},
		{qr.AppID, "MicroMessenger", qr, nil},
		{mini.AppID, "", platform.App{}, ErrUnknownApp},
		{"wxnothere", "", platform.App{}, ErrUnknownApp},
	} {
		got, err := f.App(tc.appid, tc.ua)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("App(%q, %q) = %v, %v; want %v, %v", tc.appid, tc.ua, got.AppID, err, tc.want.AppID, tc.err)
		}
	}
	f.Apps = nil
	if _, err := f.App("", ""); !errors.Is(err, ErrNoWebApp) {
		t.Errorf("no web apps: %v", err)
	}
	f.Apps = []platform.App{web}
	if got, _ := f.App("", "Firefox"); got != web {
		t.Errorf("the only web app is not the default for every browser: %v", got.AppID)
	}
}

func TestBeginAndFinish(t *testing.T) {
	ctx := context.Background()
	f, pf := newFlow(t)
	start, err := f.Begin(ctx, web, "/orders?page=2", "https://open.weixin.qq.com", callback, "")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(start.AuthorizeURL)
	if err != nil || u.Host != "open.weixin.qq.com" || u.Path != "/connect/oauth2/authorize" || u.Fragment != "wechat_redirect" ||
		u.Query().Get("state") != start.State || u.Query().Get("redirect_uri") != callback || u.Query().Get("scope") != platform.ScopeUserInfo {
		t.Fatalf("authorize URL %s", start.AuthorizeURL)
	}
	if len(start.State) != stateLength {
		t.Errorf("state %q", start.State)
	}

	// Another browser's state: refused, and not spent.
	if _, err := f.Finish(ctx, "someone-elses", start.State, "amy"); !errors.Is(err, ErrForeignState) {
		t.Fatalf("a foreign state: %v", err)
	}
	done, err := f.Finish(ctx, start.State, start.State, "amy")
	if err != nil {
		t.Fatal(err)
	}
	res := done.Session
	if done.Next != "/orders?page=2" || done.App != web || res.User.OpenID != "o-amy" || res.User.UnionID != "u-o-amy" ||
		res.User.Profile == nil || res.User.Profile.Nickname != "Web o-amy" || res.Session.Source != "wechat-web" {
		t.Fatalf("finished login: %+v, user %+v, session %+v", done, res.User, res.Session)
	}
	// Good once.
	if _, err := f.Finish(ctx, start.State, start.State, "amy"); !errors.Is(err, ErrUnknownState) {
		t.Fatalf("a replayed state: %v", err)
	}
	if len(pf.codes) != 1 {
		t.Errorf("the platform was asked %d times, want once", len(pf.codes))
	}

	// snsapi_base: no profile.
	start, _ = f.Begin(ctx, web, "", "https://open.weixin.qq.com", callback, "")
	done, err = f.Finish(ctx, start.State, start.State, "base-bob")
	if err != nil || done.Session.User.Profile != nil || done.Next != "/" {
		t.Fatalf("a base login: %+v, %v", done, err)
	}

	// The user refused, or the app went away.
	start, _ = f.Begin(ctx, qr, "/", "https://open.weixin.qq.com", callback, "")
	if done, err := f.Finish(ctx, start.State, start.State, ""); !errors.Is(err, ErrNotAuthorized) || done.App != qr {
		t.Errorf("no code: %+v, %v", done, err)
	}
	start, _ = f.Begin(ctx, qr, "/", "https://open.weixin.qq.com", callback, "")
	f.Lookup = func(string) (platform.App, bool) { return platform.App{}, false }
	if _, err := f.Finish(ctx, start.State, start.State, "x"); !errors.Is(err, ErrAppGone) {
		t.Errorf("the app was removed: %v", err)
	}
}

func TestFinishPassesPlatformErrors(t *testing.T) {
	ctx := context.Background()
	f, pf := newFlow(t)
	pf.err = &platform.Error{Code: platform.InvalidCode, API: "oauth2_access_token", Message: "bad code"}
	start, _ := f.Begin(ctx, web, "/", "https://open.weixin.qq.com", callback, "")
	if done, err := f.Finish(ctx, start.State, start.State, "x"); platform.AsError(err) == nil || done.App != web {
		t.Fatalf("the platform's refusal became %+v, %v", done, err)
	}
}

// The sandbox's authorize page is a plain redirect: no fragment, which a
// browser would carry onto the final page, and the developer's user.
func TestBeginInTheSandbox(t *testing.T) {
	f, _ := newFlow(t)
	f.Sandbox = true
	start, err := f.Begin(context.Background(), web, "/", "https://gw.example/wx/web/sandbox", callback, "bob")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(start.AuthorizeURL)
	if strings.Contains(start.AuthorizeURL, "#") || u.Query().Get("sandbox_user") != "bob" {
		t.Errorf("sandbox authorize URL %s", start.AuthorizeURL)
	}
}

// Two tabs with one refresh cookie come back with one session; a spent
// cookie after the grace, or a guessed one, starts over at the platform.
func TestResume(t *testing.T) {
	ctx := context.Background()
	f, _ := newFlow(t)
	start, _ := f.Begin(ctx, qr, "/", "https://open.weixin.qq.com", callback, "")
	done, err := f.Finish(ctx, start.State, start.State, "tabs")
	if err != nil {
		t.Fatal(err)
	}
	res := done.Session
	var wg sync.WaitGroup
	tabs := make([]*login.Result, 2)
	errs := make([]error, 2)
	for i := range tabs {
		wg.Add(1)
		go func() { defer wg.Done(); tabs[i], errs[i] = f.Resume(ctx, res.RefreshToken) }()
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || tabs[0].RefreshToken != tabs[1].RefreshToken {
		t.Fatalf("two tabs: %v, %v", errs[0], errs[1])
	}
	sid, _, _ := strings.Cut(res.RefreshToken, ".")
	_, err = f.Resume(ctx, sid+".guessed")
	if !StartOver(err) {
		t.Errorf("a guessed cookie: %v, want a start over", err)
	}
	if StartOver(errors.New("storage is down")) {
		t.Error("a storage failure is not a reason to drop the cookie")
	}
}

func TestSafeNext(t *testing.T) {
	for next, want := range map[string]string{
		"/orders?x=1": "/orders?x=1", "/a/b?c=d#e": "/a/b?c=d#e", "": "/",
		"https://evil.example/": "/", "//evil.example/x": "/", "/\\evil.example": "/", "\\\\evil.example": "/",
		"javascript:alert(1)": "/", "http:/evil.example": "/", "evil.example": "/", "/ok\r\nSet-Cookie: x=y": "/",
		"/" + strings.Repeat("a", 2048): "/",
	} {
		if got := SafeNext(next); got != want {
			t.Errorf("SafeNext(%q) = %q, want %q", next, got, want)
		}
	}
}
