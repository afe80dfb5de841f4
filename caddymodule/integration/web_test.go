package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/identity"
)

const (
	webAppID = "wxwebapp00000001" // official-account pages, snsapi_userinfo
	qrAppID  = "wxqrapp000000001" // website QR login
	baseApp  = "wxbaseapp0000001" // official-account pages, snsapi_base
)

// webApps is a mini program plus web apps; the fake platform serves the
// authorize pages too (open_base).
const webApps = `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
		}
		app ` + webAppID + ` {
			secret {env.` + secretEnv + `}
			platform wechat-web
			scope snsapi_userinfo
		}
		app ` + qrAppID + ` {
			secret {env.` + secretEnv + `}
			platform wechat-qr
		}
		app ` + baseApp + ` {
			secret {env.` + secretEnv + `}
			platform wechat-web
		}
		api_base {api_base}
		open_base {api_base}
		platform_timeout 1s
`

const weChatUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.50"

// cookies maps name to the Set-Cookie of an answer.
func cookies(r *response) map[string]*http.Cookie {
	m := map[string]*http.Cookie{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		m[c.Name] = c
	}
	return m
}

// webFlow is one browser's trip through the web login.
type webFlow struct {
	authorize *url.URL // where the gateway sent the browser
	callback  string   // the path and query the platform sent it back to
	state     *http.Cookie
	final     *response // the callback's answer
}

// webLogin walks a browser through the web login: the gateway's redirect,
// the (fake) platform's authorize page, and the callback. headers go with
// the first request.
func (g *gateway) webLogin(loginPath string, headers ...string) webFlow {
	g.t.Helper()
	var f webFlow
	start := g.do(http.MethodGet, loginPath, nil, headers...)
	if start.Status != http.StatusFound {
		g.t.Fatalf("GET %s: status %d, want 302: %s", loginPath, start.Status, start.Body)
	}
	var err error
	if f.authorize, err = url.Parse(start.Header.Get("Location")); err != nil {
		g.t.Fatal(err)
	}
	if f.state = cookies(start)["wxauth_state"]; f.state == nil {
		g.t.Fatalf("no state cookie: %v", start.Header)
	}
	// The authorize page (the fragment stays in the browser).
	page := *f.authorize
	page.Fragment = ""
	resp, err := g.client.Get(page.String())
	if err != nil {
		g.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		g.t.Fatalf("authorize page: status %d", resp.StatusCode)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(back.String(), g.URL+"/wx/web/callback?") {
		g.t.Fatalf("the platform sent the browser to %q, want the callback", resp.Header.Get("Location"))
	}
	f.callback = back.RequestURI()
	f.final = g.do(http.MethodGet, f.callback, nil, "Cookie", f.state.Name+"="+f.state.Value)
	return f
}

// sessionCookie is the access-token cookie a finished web login set.
func (f webFlow) sessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	if f.final.Status != http.StatusFound {
		t.Fatalf("callback: status %d: %s", f.final.Status, f.final.Body)
	}
	c := cookies(f.final)["wxauth_token"]
	if c == nil || c.Value == "" {
		t.Fatalf("the callback set no session cookie: %v", f.final.Header)
	}
	return c
}

func TestWebLoginInsideWeChat(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	f := g.webLogin("/wx/web/login?next="+url.QueryEscape("/orders?page=2"), "User-Agent", weChatUA)

	// Inside WeChat: the official-account authorize page, parameters in
	// WeChat's order, back to our callback, with a fresh state.
	a := f.authorize
	if a.Path != "/connect/oauth2/authorize" || a.Fragment != "wechat_redirect" {
		t.Errorf("authorize URL %s, want /connect/oauth2/authorize#wechat_redirect", a)
	}
	q := a.Query()
	if q.Get("appid") != webAppID || q.Get("scope") != "snsapi_userinfo" || q.Get("response_type") != "code" ||
		q.Get("redirect_uri") != g.URL+"/wx/web/callback" || q.Get("state") != f.state.Value || len(q.Get("state")) < 32 {
		t.Errorf("authorize query %v", q)
	}
	if !strings.HasPrefix(a.RawQuery, "appid=") {
		t.Errorf("authorize parameters out of WeChat's order: %s", a.RawQuery)
	}
	checkCookie(t, f.state, "/wx/web/callback")

	// The callback: back to next, with the session cookies.
	if loc := f.final.Header.Get("Location"); loc != "/orders?page=2" {
		t.Errorf("callback redirects to %q, want next", loc)
	}
	tok := f.sessionCookie(t)
	checkCookie(t, tok, "/")
	checkCookie(t, cookies(f.final)["wxauth_refresh"], "/wx/") // every endpoint: logout too

	// The gate accepts the cookie; the upstream sees a web user with the
	// platform's profile, and neither the token nor its cookie.
	r := g.get("/orders", "", "Cookie", "theme=dark; wxauth_token="+tok.Value)
	if r.Status != http.StatusOK {
		t.Fatalf("gate refused the session cookie: %d %s", r.Status, r.Body)
	}
	h := g.Upstream.LastHeaders()
	nick, _ := identity.DecodeNickname(h.Get("X-Wx-Nickname"))
	if h.Get("X-Wx-Source") != "wechat-web" || h.Get("X-Wx-Appid") != webAppID ||
		h.Get("X-Wx-Openid") != fakeplatform.OpenID(webAppID, "webuser") || h.Get("X-Wx-Unionid") != fakeplatform.UnionID("webuser") {
		t.Errorf("upstream headers %v", h)
	}
	if nick == "" || h.Get("X-Wx-Avatar") == "" {
		t.Errorf("snsapi_userinfo profile not forwarded: nickname %q avatar %q", nick, h.Get("X-Wx-Avatar"))
	}
	if ck := h.Get("Cookie"); strings.Contains(ck, "wxauth_token") || !strings.Contains(ck, "theme=dark") {
		t.Errorf("upstream Cookie = %q, want the other cookies without the token", ck)
	}

	// One person across front ends: the mini program login of the same
	// person carries the same unionid.
	if s := g.login("webuser"); s.UnionID != h.Get("X-Wx-Unionid") {
		t.Errorf("mini program unionid %q, web unionid %q", s.UnionID, h.Get("X-Wx-Unionid"))
	}
}

// checkCookie asserts a session cookie's flags.
func checkCookie(t *testing.T, c *http.Cookie, path string) {
	t.Helper()
	if c == nil {
		t.Fatalf("cookie for %s missing", path)
	}
	if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != path || c.MaxAge <= 0 {
		t.Errorf("cookie %s: HttpOnly=%t Secure=%t SameSite=%v Path=%q MaxAge=%d; want HttpOnly, Secure, Lax, %q, positive", c.Name, c.HttpOnly, c.Secure, c.SameSite, c.Path, c.MaxAge, path)
	}
}

func TestWebLoginWebsiteQR(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	// A desktop browser: the website's QR login.
	f := g.webLogin("/wx/web/login", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")
	if f.authorize.Path != "/connect/qrconnect" || f.authorize.Query().Get("scope") != "snsapi_login" || f.authorize.Query().Get("appid") != qrAppID {
		t.Errorf("authorize URL %s, want the QR login of %s", f.authorize, qrAppID)
	}
	if loc := f.final.Header.Get("Location"); loc != "/" {
		t.Errorf("without next the callback redirects to %q, want /", loc)
	}
	tok := f.sessionCookie(t)
	g.get("/", "", "Cookie", "wxauth_token="+tok.Value)
	h := g.Upstream.LastHeaders()
	if h.Get("X-Wx-Appid") != qrAppID || h.Get("X-Wx-Source") != "wechat-web" || h.Get("X-Wx-Nickname") == "" {
		t.Errorf("upstream headers %v", h)
	}

	// snsapi_base asks for no profile: no userinfo call, no nickname.
	before := g.Platform.Calls("/sns/userinfo")
	f = g.webLogin("/wx/web/login?appid=" + baseApp)
	if f.authorize.Query().Get("scope") != "snsapi_base" {
		t.Errorf("scope = %q, want snsapi_base", f.authorize.Query().Get("scope"))
	}
	g.get("/", "", "Cookie", "wxauth_token="+f.sessionCookie(t).Value)
	if g.Platform.Calls("/sns/userinfo") != before || g.Upstream.LastHeaders().Get("X-Wx-Nickname") != "" {
		t.Error("snsapi_base fetched or forwarded a profile")
	}

	g.do(http.MethodGet, "/wx/web/login?appid="+testAppID, nil).Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/login", map[string]string{"code": "x", "appid": webAppID}).Error(t, http.StatusBadRequest, "invalid_request")
}

func TestWebLoginStateAndRedirectAttacks(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	f := g.webLogin("/wx/web/login", "User-Agent", weChatUA)
	f.sessionCookie(t)

	// Replaying the callback (same state, same cookie): refused.
	g.do(http.MethodGet, f.callback, nil, "Cookie", "wxauth_state="+f.state.Value).Error(t, http.StatusBadRequest, "invalid_request")

	// A state from another browser (the cookie does not match): refused,
	// and the state is not spent, so its own browser can still finish.
	start := g.do(http.MethodGet, "/wx/web/login", nil, "User-Agent", weChatUA)
	loc, _ := url.Parse(start.Header.Get("Location"))
	state := loc.Query().Get("state")
	cb := "/wx/web/callback?code=webuser2&state=" + state
	g.do(http.MethodGet, cb, nil).Error(t, http.StatusBadRequest, "invalid_request")
	g.do(http.MethodGet, cb, nil, "Cookie", "wxauth_state=forged0000000000000000000000000000").Error(t, http.StatusBadRequest, "invalid_request")
	// A forged state that matches a forged cookie was never issued.
	g.do(http.MethodGet, "/wx/web/callback?code=x&state=forged1", nil, "Cookie", "wxauth_state=forged1").Error(t, http.StatusBadRequest, "invalid_request")
	if r := g.do(http.MethodGet, cb, nil, "Cookie", "wxauth_state="+state); r.Status != http.StatusFound {
		t.Errorf("the real browser could not finish after a forged attempt: %d %s", r.Status, r.Body)
	}
	// The user refused (no code).
	start = g.do(http.MethodGet, "/wx/web/login", nil)
	state = cookies(start)["wxauth_state"].Value
	g.do(http.MethodGet, "/wx/web/callback?state="+state, nil, "Cookie", "wxauth_state="+state).Error(t, http.StatusBadRequest, "invalid_request")

	// next must stay on this site.
	for _, next := range []string{
		"https://evil.example/", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
		"javascript:alert(1)", "http:/evil.example", "evil.example", "/ok\r\nSet-Cookie: x=y",
	} {
		f := g.webLogin("/wx/web/login?next="+url.QueryEscape(next), "User-Agent", weChatUA)
		if loc := f.final.Header.Get("Location"); loc != "/" {
			t.Errorf("next=%q: redirected to %q, want /", next, loc)
		}
	}
	if f := g.webLogin("/wx/web/login?next="+url.QueryEscape("/a/b?c=d#e"), "User-Agent", weChatUA); f.final.Header.Get("Location") != "/a/b?c=d#e" {
		t.Errorf("a same-site next was not kept: %q", f.final.Header.Get("Location"))
	}
}

// A page load the gate refuses goes to the web login; an API call gets
// its 401, and so does a page load on a gateway without web apps.
func TestBrowserRedirectVersusAPI(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	html := []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}

	r := g.do(http.MethodGet, "/orders?x=1", nil, html...)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/wx/web/login?next="+url.QueryEscape("/orders?x=1") {
		t.Errorf("browser without a session: %d to %q, want a redirect to the web login", r.Status, r.Header.Get("Location"))
	}
	g.do(http.MethodGet, "/orders", nil, "Accept", "application/json").Error(t, http.StatusUnauthorized, "login_required")
	g.do(http.MethodPost, "/orders", []byte("x"), html...).Error(t, http.StatusUnauthorized, "login_required")
	g.do(http.MethodGet, "/orders", nil, append(html, "Authorization", "Bearer nope")...).Error(t, http.StatusUnauthorized, "token_invalid")
	// A cookie that does not verify: back to the login as well.
	if r := g.do(http.MethodGet, "/orders", nil, append(html, "Cookie", "wxauth_token=nope")...); r.Status != http.StatusFound {
		t.Errorf("browser with a bad cookie: status %d, want 302", r.Status)
	}
	if g.Upstream.Hits() != 0 {
		t.Error("a refused request reached the upstream")
	}

	plain := startGateway(t, gatewayConfig{})
	plain.do(http.MethodGet, "/orders", nil, html...).Error(t, http.StatusUnauthorized, "login_required")
}

func TestWebLogoutAndSilentRefresh(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	f := g.webLogin("/wx/web/login", "User-Agent", weChatUA)
	tok := f.sessionCookie(t)
	refresh := cookies(f.final)["wxauth_refresh"]

	// A browser with a live refresh cookie comes straight back, with new
	// cookies, without a trip to the platform.
	authorizeCalls := len(g.Platform.AuthorizeRequests())
	r := g.do(http.MethodGet, "/wx/web/login?next=/back", nil, "Cookie", "wxauth_refresh="+refresh.Value)
	if r.Status != http.StatusFound || r.Header.Get("Location") != "/back" {
		t.Fatalf("silent refresh: %d to %q", r.Status, r.Header.Get("Location"))
	}
	fresh := cookies(r)["wxauth_token"]
	if fresh == nil || len(g.Platform.AuthorizeRequests()) != authorizeCalls {
		t.Fatalf("silent refresh set no token or went to the platform")
	}
	// The spent refresh cookie is no good a second time (it was rotated).
	newRefresh := cookies(r)["wxauth_refresh"]
	if newRefresh == nil || newRefresh.Value == refresh.Value {
		t.Fatal("the refresh cookie was not rotated")
	}

	// A web user has no phone-number API.
	g.postJSON("/wx/phone", map[string]string{"code": "p"}, "Cookie", "wxauth_token="+tok.Value).Error(t, http.StatusBadRequest, "invalid_request")

	// Logout with the cookie: 204, both cookies cleared, the token dead.
	out := g.do(http.MethodPost, "/wx/logout", nil, "Cookie", "wxauth_token="+fresh.Value+"; wxauth_refresh="+newRefresh.Value)
	if out.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", out.Status, out.Body)
	}
	cleared := cookies(out)
	for _, name := range []string{"wxauth_token", "wxauth_refresh"} {
		if c := cleared[name]; c == nil || c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("logout did not clear %s: %+v", name, c)
		}
	}
	g.get("/orders", "", "Cookie", "wxauth_token="+fresh.Value).Error(t, http.StatusUnauthorized, "token_revoked")

	// Nothing secret of the web login reaches the log: the platform's web
	// tokens, our cookies' tokens, the secret.
	logs := g.Logs()
	secrets := append(g.Platform.WebTokens(), tok.Value, refresh.Value, fresh.Value, newRefresh.Value, testSecret)
	if len(g.Platform.WebTokens()) == 0 {
		t.Fatal("the fake issued no web tokens; the scan proves nothing")
	}
	for _, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("a secret of the web login is in the log: %.12s...", secret)
		}
	}
	if !strings.Contains(logs, `"source":"wechat-web"`) {
		t.Error("no web login line in the log")
	}
}

// The sandbox serves its own authorize page: the whole web flow runs with
// no credentials and no network.
func TestSandboxWebLogin(t *testing.T) {
	const web = "wxsandboxweb0001"
	g := startGateway(t, gatewayConfig{Block: "\t\tapp " + web + " {\n\t\t\tplatform wechat-web\n\t\t\tscope snsapi_userinfo\n\t\t}\n\t\tsandbox\n"})
	f := g.webLogin("/wx/web/login?sandbox_user=bob&next=/home", "User-Agent", weChatUA)
	if !strings.HasPrefix(f.authorize.String(), g.URL+"/wx/web/sandbox/connect/oauth2/authorize?") {
		t.Errorf("sandbox authorize URL %s", f.authorize)
	}
	tok := f.sessionCookie(t)
	if loc := f.final.Header.Get("Location"); loc != "/home" {
		t.Errorf("redirect to %q", loc)
	}
	g.get("/home", "", "Cookie", "wxauth_token="+tok.Value)
	h := g.Upstream.LastHeaders()
	if h.Get("X-Wx-Openid") != fakeplatform.OpenID(web, "bob") || h.Get("X-Wx-Unionid") != fakeplatform.UnionID("bob") || h.Get("X-Wx-Source") != "wechat-web" {
		t.Errorf("sandbox web user: %v", h)
	}
	// The sandbox's authorize page returns only to this gateway.
	evil := "/wx/web/sandbox/connect/oauth2/authorize?appid=" + web + "&redirect_uri=" + url.QueryEscape("https://evil.example/cb") + "&response_type=code&scope=snsapi_base&state=abc"
	g.do(http.MethodGet, evil, nil).Error(t, http.StatusBadRequest, "invalid_request")
}
