package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// webSession logs a browser in through the web login and returns its
// cookies as a Cookie header value, and the refresh cookie's value.
func (g *gateway) webSession() (cookieHeader string, access, refresh *http.Cookie) {
	g.t.Helper()
	f := g.webLogin("/wx/web/login", "User-Agent", weChatUA)
	access = f.sessionCookie(g.t)
	refresh = cookies(f.final)["wxauth_refresh"]
	if refresh == nil {
		g.t.Fatal("the web login set no refresh cookie")
	}
	return access.Name + "=" + access.Value + "; " + refresh.Name + "=" + refresh.Value, access, refresh
}

// The upstream's own cookies reach it byte for byte, in order, whatever
// they hold; the gateway's cookies never do, with cookie or Bearer auth.
// Fails if the gate re-parses and re-serialises the Cookie header (JSON
// and UTF-8 values are then dropped or quoted), or passes wxauth_* on.
func TestUpstreamCookiesPassByteForByte(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	session, access, refresh := g.webSession()
	mini := g.login("cookie-bearer")
	const theirs = `prefs={"a":1}; utf=café; q="quoted"; empty=; sp=a b`

	for name, tc := range map[string]struct{ cookie, auth string }{
		"cookie auth, ours in the middle": {`prefs={"a":1}; ` + session + `; utf=café; q="quoted"; empty=; sp=a b`, ""},
		"cookie auth, ours first":         {session + "; " + theirs, ""},
		"bearer auth with our cookies":    {theirs + "; wxauth_token=" + access.Value + "; wxauth_state=x; wxauth_refresh=" + refresh.Value, mini.AccessToken},
		"bearer auth, only our cookies":   {"wxauth_token=" + access.Value, mini.AccessToken},
	} {
		t.Run(name, func(t *testing.T) {
			headers := []string{"Cookie", tc.cookie}
			if tc.auth != "" {
				headers = append(headers, bearer(tc.auth)...)
			}
			r := g.do(http.MethodGet, "/orders", nil, headers...)
			if r.Status != http.StatusOK {
				t.Fatalf("gate: %d %s", r.Status, r.Body)
			}
			got := g.Upstream.LastHeaders().Values("Cookie")
			want := []string{theirs}
			if !strings.Contains(tc.cookie, "prefs") {
				want = nil
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("upstream Cookie = %q, want %q", got, want)
			}
		})
	}
	// Two Cookie header lines (as HTTP/2 may send them) are handled alike.
	g.do(http.MethodGet, "/orders", nil, "Cookie", "a=1; wxauth_token="+access.Value, "Cookie", "wxauth_refresh="+refresh.Value, "Cookie", "b=2")
	if got := g.Upstream.LastHeaders().Values("Cookie"); strings.Join(got, "|") != "a=1|b=2" {
		t.Errorf("upstream Cookie lines = %q, want [a=1 b=2]", got)
	}
}

// A cookie-authenticated request with an unsafe method from another
// origin of the same site (another port, a sibling subdomain) is refused
// with 403 forbidden_origin, at the endpoints and through the gate; the
// site's own pages, trusted origins and Bearer clients are not. Fails
// without the origin check: SameSite=Lax lets these through.
func TestCrossOriginCookieRequestsRefused(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps + "\t\ttrusted_origins https://shop.example.test\n"})
	session, _, _ := g.webSession()
	host := strings.TrimPrefix(g.URL, "http://")
	hits := g.Upstream.Hits()

	attacks := map[string][]string{
		"sibling site (Sec-Fetch-Site)": {"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:1"},
		"another site":                  {"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"},
		"old browser, foreign Origin":   {"Origin", "http://evil.example"},
	}
	for name, h := range attacks {
		t.Run(name, func(t *testing.T) {
			cookie := append([]string{"Cookie", session}, h...)
			g.do(http.MethodPost, "/api/transfer", []byte("to=mallory"), append(cookie, "Content-Type", "application/x-www-form-urlencoded")...).Error(t, http.StatusForbidden, "forbidden_origin")
			g.do(http.MethodDelete, "/api/account", nil, cookie...).Error(t, http.StatusForbidden, "forbidden_origin")
			g.postJSON("/wx/profile", map[string]string{"nickname": "pwned"}, cookie...).Error(t, http.StatusForbidden, "forbidden_origin")
			out := g.do(http.MethodPost, "/wx/logout", nil, cookie...)
			out.Error(t, http.StatusForbidden, "forbidden_origin")
			if sc := out.Header.Values("Set-Cookie"); len(sc) != 0 {
				t.Errorf("a refused logout still cleared cookies: %q", sc)
			}
		})
	}
	if g.Upstream.Hits() != hits {
		t.Fatal("a cross-origin cookie request reached the upstream")
	}
	// The session is untouched: nickname and session as before.
	if r := g.get("/orders", "", "Cookie", session); r.Status != http.StatusOK || g.Upstream.LastHeaders().Get("X-Wx-Nickname") == identity.EncodeNickname("pwned") {
		t.Fatalf("the session after the attacks: %d, nickname %q", r.Status, g.Upstream.LastHeaders().Get("X-Wx-Nickname"))
	}

	// The site's own page, a trusted origin, a browser navigation's GET,
	// a non-browser client and a Bearer client may.
	for name, h := range map[string][]string{
		"same origin":    {"Sec-Fetch-Site", "same-origin", "Origin", g.URL},
		"trusted origin": {"Sec-Fetch-Site", "cross-site", "Origin", "https://shop.example.test"},
		"Origin = Host":  {"Origin", "http://" + host},
		"no browser":     {},
	} {
		r := g.do(http.MethodPost, "/api/transfer", []byte("x"), append([]string{"Cookie", session}, h...)...)
		if r.Status != http.StatusOK {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
	mini := g.login("csrf-bearer")
	if r := g.do(http.MethodPost, "/api/transfer", []byte("x"), append(bearer(mini.AccessToken), "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example")...); r.Status != http.StatusOK {
		t.Errorf("a Bearer request from another origin was refused: %d %s", r.Status, r.Body)
	}
	if r := g.do(http.MethodGet, "/orders", nil, "Cookie", session, "Sec-Fetch-Site", "same-site"); r.Status != http.StatusOK {
		t.Errorf("a cookie GET from a sibling site was refused: %d", r.Status)
	}
}

// A page's profile change through its cookie sets the new access cookie
// and answers no token page script could read; the upstream then sees the
// new nickname. Bearer clients keep getting the token. Fails if the
// cookie session gets a bearer token in JSON, or keeps the old cookie.
func TestCookieProfileUpdateSetsTheCookie(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps})
	session, _, refresh := g.webSession()
	r := g.postJSON("/wx/profile", map[string]string{"nickname": "新名字"}, "Cookie", session, "Sec-Fetch-Site", "same-origin")
	if r.Status != http.StatusOK {
		t.Fatalf("profile: %d %s", r.Status, r.Body)
	}
	if m := r.JSON(t); m["access_token"] != nil || m["expires_in"] != nil || m["profile"] == nil {
		t.Errorf("a cookie session's profile answer: %s; want the profile and no token", r.Body)
	}
	fresh := cookies(r)["wxauth_token"]
	if fresh == nil || fresh.Value == "" {
		t.Fatal("the profile change set no new access cookie")
	}
	checkCookie(t, fresh, "/")
	g.get("/orders", "", "Cookie", "wxauth_token="+fresh.Value+"; wxauth_refresh="+refresh.Value)
	if nick, _ := identity.DecodeNickname(g.Upstream.LastHeaders().Get("X-Wx-Nickname")); nick != "新名字" {
		t.Errorf("upstream nickname after the change: %q", nick)
	}

	mini := g.login("bearer-profile")
	a := g.postJSON("/wx/profile", map[string]string{"nickname": "Bea"}, bearer(mini.AccessToken)...)
	if m := a.JSON(t); m["access_token"] == nil || len(a.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a Bearer client's profile answer: %s (Set-Cookie %q); want the token and no cookie", a.Body, a.Header.Values("Set-Cookie"))
	}
}

// Profile input that is unsafe in pages and headers is refused with 400
// invalid_request (the full tables are in package valid).
func TestUnsafeProfileInputRefused(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("unsafe-input")
	for _, body := range []map[string]string{
		{"avatar_url": `https://evil.com/"><script>alert(1)</script>`},
		{"avatar_url": "https://evil.com/'onerror='x"},
		{"nickname": "abc\u202Etxt.exe"},
		{"nickname": "\u3164"},
		{"nickname": "\u200B\u200B"},
		{"nickname": "\uFEFFbom"},
		{"nickname": "tag\U000E0041"},
	} {
		g.postJSON("/wx/profile", body, bearer(s.AccessToken)...).Error(t, http.StatusBadRequest, "invalid_request")
	}
	for _, nick := range []string{"👨\u200d👩\u200d👧", "张伟", "Zoë"} {
		r := g.postJSON("/wx/profile", map[string]string{"nickname": nick}, bearer(s.AccessToken)...)
		if r.Status != http.StatusOK {
			t.Errorf("nickname %q refused: %d %s", nick, r.Status, r.Body)
		}
	}
}

// The sandbox's authorize page is reached without WeChat's
// #wechat_redirect: a browser would carry it through the redirects onto
// the final page's URL.
func TestSandboxAuthorizeURLHasNoFragment(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: "\t\tapp wxsandboxweb0001 {\n\t\t\tplatform wechat-web\n\t\t}\n\t\tsandbox\n"})
	for _, path := range []string{"/wx/web/login?next=/home", "/wx/web/login?sandbox_user=bob"} {
		r := g.do(http.MethodGet, path, nil, "User-Agent", weChatUA)
		loc, err := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusFound || err != nil || loc.Fragment != "" || strings.Contains(r.Header.Get("Location"), "#") {
			t.Errorf("%s: %d to %q, want a redirect without a fragment", path, r.Status, r.Header.Get("Location"))
		}
		if strings.Contains(path, "bob") && loc.Query().Get("sandbox_user") != "bob" {
			t.Errorf("sandbox_user lost: %q", r.Header.Get("Location"))
		}
	}
}
