package browser

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
)

// login sends the browser through the web login (the platform's authorize
// page, in the sandbox) to next, and checks that it arrived with a session.
func login(tb *tab, next string) navigation {
	tb.t.Helper()
	nav := tb.visit("/wx/web/login?next=" + url.QueryEscape(next))
	want, _ := url.Parse(next)
	if nav.Final.Path != want.Path || nav.Final.RawQuery != want.RawQuery {
		tb.t.Fatalf("the web login ended at %s, want %s; chain:%s", nav.Final, next, chainString(nav.Chain))
	}
	if tb.b.cookie("wxauth_token") == nil {
		tb.t.Fatalf("the web login to %s set no wxauth_token cookie; chain:%s", next, chainString(nav.Chain))
	}
	return nav
}

// checkSessionCookie asserts a cookie's attributes as the browser keeps
// them. The gateway marks its cookies Secure although these tests serve
// plain http: Chromium treats http://127.0.0.1 and http://localhost as
// potentially trustworthy origins and keeps (and sends) Secure cookies
// there, which this check proves on every run (a Secure cookie Chromium
// refused would be missing from the jar).
//
// path is the cookie's Path, or, ending in "*", a prefix of it.
func checkSessionCookie(t *testing.T, c *network.Cookie, name, path string, life time.Duration) {
	t.Helper()
	if c == nil {
		t.Errorf("the browser holds no %s cookie", name)
		return
	}
	pathOK := c.Path == path
	if prefix, ok := strings.CutSuffix(path, "*"); ok {
		pathOK = strings.HasPrefix(c.Path, prefix)
	}
	if !c.HTTPOnly || !c.Secure || c.SameSite != network.CookieSameSiteLax || !pathOK || c.Domain != "127.0.0.1" || c.Session {
		t.Errorf("cookie %s; want HttpOnly, Secure, SameSite=Lax, Path=%s, host-only for 127.0.0.1, with an expiry", describeCookie(c), path)
	}
	if !c.Session {
		left := time.Until(time.Unix(0, int64(c.Expires*float64(time.Second))))
		if left <= 0 || left > life+time.Minute {
			t.Errorf("cookie %s expires in %v, want about %v", name, left.Round(time.Second), life)
		}
	}
}

// checkRefreshCookie: the refresh cookie is scoped to the gateway's
// endpoints, so it never goes with a request to the upstream's pages.
// Which endpoints is not pinned: today Path=/wx/web/ (the web login only),
// which keeps it from /wx/logout too; the logout fix may widen it.
func checkRefreshCookie(t *testing.T, b *browser) {
	t.Helper()
	checkSessionCookie(t, b.cookie("wxauth_refresh"), "wxauth_refresh", "/wx/*", 720*time.Hour)
}

// A page load without a session goes through the web login, the
// platform's authorize page (the sandbox's, which comes straight back) and
// the callback, and lands back on the page, logged in.
func TestPageLoadWithoutSessionLogsIn(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	b, tb := startBrowser(t, g)

	nav := tb.visit("/app/orders?x=1")
	wantPaths := []string{"/app/orders", "/wx/web/login", "/wx/web/sandbox/connect/qrconnect", "/wx/web/callback", "/app/orders"}
	if !slices.Equal(nav.paths(), wantPaths) {
		t.Fatalf("redirect chain %q, want %q:%s", nav.paths(), wantPaths, chainString(nav.Chain))
	}
	for i, r := range nav.Chain {
		if want := int64(http.StatusFound); i < len(nav.Chain)-1 && r.Status != want {
			t.Errorf("hop %d (%s): status %d, want %d", i, r.URL, r.Status, want)
		}
	}
	if last := nav.Chain[len(nav.Chain)-1]; last.Status != http.StatusOK {
		t.Errorf("the page answered %d, want 200", last.Status)
	}
	// The gate's redirect keeps the page's path and query as next.
	if loc := nav.Chain[0].Location; loc != "/wx/web/login?next="+url.QueryEscape("/app/orders?x=1") {
		t.Errorf("the gate redirected to %q", loc)
	}
	if nav.Final.Scheme+"://"+nav.Final.Host != g.URL || nav.Final.Path != "/app/orders" || nav.Final.RawQuery != "x=1" {
		t.Errorf("the browser ended at %s, want %s/app/orders?x=1", nav.Final, g.URL)
	}

	// The page is the upstream's, for the sandbox user, seen as a web login.
	e := tb.echo()
	h := http.Header(e.Headers)
	if e.Path != "/app/orders" || h.Get("X-Wx-Openid") != aliceOpenID || h.Get("X-Wx-Appid") != webAppID || h.Get("X-Wx-Source") != "wechat-web" {
		t.Errorf("the upstream answered %s with identity %v", e.Path, h)
	}
	checkSessionCookie(t, b.cookie("wxauth_token"), "wxauth_token", "/", 2*time.Hour)
	checkRefreshCookie(t, b)
	if c := b.cookie("wxauth_state"); c != nil {
		t.Errorf("the state cookie outlived the login: %s", describeCookie(c))
	}
}

// A link to the web login lands on next, with the session cookies; the
// state cookie, which the callback alone needs, is gone afterwards.
func TestWebLoginLinkLandsOnNext(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	b, tb := startBrowser(t, g)

	// Before the authorize page, the browser holds the state, only for the
	// callback.
	mark := tb.mark()
	nav := login(tb, "/app/welcome?tab=2")
	if !nav.passedThrough("/wx/web/sandbox/connect/") {
		t.Errorf("a first login did not go to the platform: %q", nav.paths())
	}
	var sawState bool
	for _, r := range tb.since(mark) {
		if v, ok := r.Sent["wxauth_state"]; ok {
			sawState = true
			if !strings.HasPrefix(r.URL, g.URL+"/wx/web/callback?") {
				t.Errorf("the state cookie went with %s, want the callback only", r.URL)
			}
			if !strings.Contains(r.URL, "state="+v) {
				t.Errorf("the callback's state is not the browser's state cookie: %s", r.URL)
			}
		}
	}
	if !sawState {
		t.Error("the callback was not sent the state cookie")
	}
	checkSessionCookie(t, b.cookie("wxauth_token"), "wxauth_token", "/", 2*time.Hour)
	checkRefreshCookie(t, b)
	if c := b.cookie("wxauth_state"); c != nil {
		t.Errorf("the state cookie outlived the login: %s", describeCookie(c))
	}
	if e := tb.echo(); http.Header(e.Headers).Get("X-Wx-Openid") != aliceOpenID {
		t.Errorf("next was not served to the logged-in user: %+v", e)
	}
}

// WeChat's authorize URL ends with #wechat_redirect, and a browser carries
// a fragment over redirects that have none: in the sandbox, whose
// authorize page is a plain redirect, the page the login lands on would
// inherit it. The browser must end on next exactly, without a fragment.
func TestWebLoginFinalURL(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	_, tb := startBrowser(t, g)

	for _, start := range []string{"/wx/web/login?next=" + url.QueryEscape("/app/landing?a=1"), "/app/landing?a=1"} {
		tb.b.clearCookies()
		nav := tb.visit(start)
		final := nav.Final
		t.Logf("starting at %s the browser ended at %s", start, final)
		if final.Scheme+"://"+final.Host != g.URL || final.Path != "/app/landing" || final.RawQuery != "a=1" {
			t.Errorf("starting at %s the browser ended at %s, want %s/app/landing?a=1", start, final, g.URL)
		}
		if final.Fragment != "" || strings.Contains(final.String(), "#") {
			t.Errorf("the login left the platform's fragment on the page: %s", final)
		}
	}
}

// fetch() from the site's own page reaches the upstream as the user:
// the identity headers, the page's other cookies byte for byte, and
// neither the session cookies nor an Authorization header.
func TestFetchFromOwnPage(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	_, tb := startBrowser(t, g)
	login(tb, "/static/page.html")
	tb.eval(`document.cookie = "theme=dark; path=/"`)

	mark := tb.mark()
	r := tb.fetch(http.MethodGet, "/api/data?q=1", fetchOptions{})
	if r.Status != http.StatusOK {
		t.Fatalf("fetch /api/data: %d %s", r.Status, r.Body)
	}
	sent := tb.waitRequest(mark, http.MethodGet, g.URL+"/api/data")
	if sent.Sent["wxauth_token"] == "" {
		t.Fatalf("the browser did not send the session cookie with the fetch (so the test proves nothing): %s", sent.String())
	}
	seen := g.upstreamSaw("/api/data")
	if len(seen) != 1 {
		t.Fatalf("the upstream got /api/data %d times, want once", len(seen))
	}
	h := seen[0].Header
	if h.Get("X-Wx-Openid") != aliceOpenID || h.Get("X-Wx-Appid") != webAppID || h.Get("X-Wx-Source") != "wechat-web" || h.Get("X-Wx-Unionid") == "" {
		t.Errorf("the upstream's identity headers: %v", h)
	}
	if got := h.Values("Cookie"); !slices.Equal(got, []string{"theme=dark"}) {
		t.Errorf("the upstream got Cookie %q, want exactly the page's own cookie theme=dark", got)
	}
	if auth := h.Get("Authorization"); auth != "" {
		t.Errorf("the upstream got an Authorization header: %q", short(auth))
	}
}

// The open-redirect list: whatever next says, the browser ends on the
// gateway's own origin, both through the platform (a first login) and
// through the refresh cookie (a login that comes straight back).
func TestOpenRedirectList(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	b, tb := startBrowser(t, g)

	cases := []struct {
		next     string
		fallback bool // the gateway must answer "/" for it
	}{
		// The list of caddymodule/integration's TestWebLoginStateAndRedirectAttacks.
		{"https://evil.example/", true},
		{"//evil.example/x", true},
		{`/\evil.example`, true},
		{`\\evil.example`, true},
		{"javascript:alert(1)", true},
		{"http:/evil.example", true},
		{"evil.example", true},
		{"/ok\r\nSet-Cookie: x=y", true},
		// More of what browsers read as another host or a script.
		{"JaVaScRiPt:alert(document.domain)", true},
		{"data:text/html,<script>alert(1)</script>", true},
		{"https:evil.example", true},
		{"///evil.example", true},
		{`/\/evil.example`, true},
		{"/\t/evil.example", true},   // URL parsers drop tabs: //evil.example
		{"/\n/evil.example", true},   // and newlines
		{"\t//evil.example", true},   // leading whitespace
		{" //evil.example", true},    // leading space
		{"/\x00/evil.example", true}, // a NUL
		{"http://127.0.0.1@evil.example/", true},
		{g.AttackerURL + "/", true}, // same site, another origin
		{fmt.Sprintf("//127.0.0.1:%d/", g.attackerPort), true},
		// Paths on this site, however odd: kept, and still here.
		{"/%2F%2Fevil.example", false},
		{"/%5Cevil.example", false},
		{"/.//evil.example", false},
		{"/a/b?c=d#e", false},
	}
	for _, via := range []string{"the platform", "the refresh cookie"} {
		for _, c := range cases {
			if via == "the platform" {
				b.clearCookies()
			}
			nav := tb.tryVisit("/wx/web/login?next=" + url.QueryEscape(c.next))
			where := "next=" + strconv.Quote(c.next) + " via " + via
			if nav.Err != nil {
				t.Errorf("%s: the load failed (%v); chain:%s", where, nav.Err, chainString(nav.Chain))
				continue
			}
			for _, r := range nav.Chain {
				if !strings.HasPrefix(r.URL, g.URL+"/") {
					t.Errorf("%s: the browser left the gateway's origin for %s; chain:%s", where, r.URL, chainString(nav.Chain))
					break
				}
			}
			if nav.Final.Scheme+"://"+nav.Final.Host != g.URL {
				t.Errorf("%s: the browser ended at %s, want the gateway's origin %s", where, nav.Final, g.URL)
			}
			if went := nav.passedThrough("/wx/web/sandbox/connect/"); went != (via == "the platform") {
				t.Errorf("%s: passed through the platform: %t; chain:%s", where, went, chainString(nav.Chain))
			}
			if c.fallback && nav.Final.Path != "/" {
				t.Errorf("%s: the browser ended at %s, want / (next is not a path of this site)", where, nav.Final)
			}
		}
	}
}
