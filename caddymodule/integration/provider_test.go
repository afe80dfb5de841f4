package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// The gate as a Caddy authentication provider, with the wxauth handler
// serving the logins on the same storage. Alone (under /only/): a token
// from /wx/login passes, forged identity headers go, the verified ones and
// the http.auth.user.* placeholders come, and a request without a valid
// token gets the Bearer challenge and a 401. Next to Caddy's http_basic
// (under /mixed/), where Caddy tries the providers in no set order, so a
// basic-auth user may pass without wxauth seeing the request: with Caddy's
// headers handler deleting X-WX* and X_WX* first, as docs/upstream.md says, both
// kinds of user pass, and no forged identity header in any spelling.
func TestAuthenticationProvider(t *testing.T) {
	platform := fakeplatform.NewServer(t)
	upstream := e2etest.NewUpstream(t)
	port := e2etest.FreePort(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("opensesame"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	wxauth := func(extra ...string) map[string]any {
		m := map[string]any{"apps": []any{map[string]any{"appid": testAppID, "secret": "{env." + secretEnv + "}"}},
			"api_base": platform.URL, "rate_limit": map[string]any{"off": true}}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	handler := wxauth("handler", "wxauth")
	gated := func(path string, before []any, providers map[string]any) map[string]any {
		handle := append(before,
			map[string]any{"handler": "authentication", "providers": providers},
			map[string]any{"handler": "headers", "request": map[string]any{"set": map[string][]string{
				"X-Test-User": {"{http.auth.user.id}"}, "X-Test-App": {"{http.auth.user.appid}"}}}},
			map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": strings.TrimPrefix(upstream.URL, "http://")}}})
		return map[string]any{"match": []any{map[string]any{"path": []string{path}}}, "handle": handle, "terminal": true}
	}
	basic := map[string]any{"accounts": []any{map[string]any{"username": "ops", "password": string(hash)}}}
	config := map[string]any{
		"admin":   map[string]any{"listen": fmt.Sprintf("localhost:%d", caddytest.Default.AdminPort)},
		"storage": map[string]any{"module": "file_system", "root": t.TempDir()},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"provider": map[string]any{
			"listen": []string{fmt.Sprintf("127.0.0.1:%d", port)},
			"routes": []any{
				map[string]any{"match": []any{map[string]any{"path": []string{"/wx/*"}}}, "handle": []any{handler}, "terminal": true},
				gated("/only/*", nil, map[string]any{"wxauth": wxauth()}),
				gated("/mixed/*", []any{map[string]any{"handler": "headers", "request": map[string]any{"delete": []string{"X-WX*", "X_WX*"}}}},
					map[string]any{"wxauth": wxauth(), "http_basic": basic}),
			},
		}}}},
	}
	raw, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	caddytest.NewTester(t).InitServer(string(raw), "json")
	if t.Failed() {
		t.FailNow()
	}
	g := &gateway{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), Platform: platform, Upstream: upstream,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	s := g.login("provider-amy")
	basicAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:opensesame"))
	for _, path := range []string{"/only/orders", "/mixed/orders"} {
		r := g.get(path, s.AccessToken, "X-WX-OPENID", "forged", "X_WX_APPID", "forged")
		if r.Status != http.StatusOK {
			t.Fatalf("%s: the provider refused a valid token: %d %s", path, r.Status, r.Body)
		}
		h := upstream.LastHeaders()
		if got := h.Values("X-Wx-Openid"); len(got) != 1 || got[0] != s.OpenID || h.Get("X-Wx-Appid") != testAppID || len(h.Values("X_wx_appid")) != 0 {
			t.Errorf("%s: upstream identity headers %v", path, h)
		}
		if h.Get("X-Test-User") != s.OpenID || h.Get("X-Test-App") != testAppID {
			t.Errorf("%s: placeholders: user %q app %q", path, h.Get("X-Test-User"), h.Get("X-Test-App"))
		}
		if h.Get("Authorization") != "" {
			t.Errorf("%s: the token reached the upstream", path)
		}
	}

	hits := upstream.Hits()
	for name, headers := range map[string][]string{
		"no credential":   {"X-WX-OPENID", "forged"},
		"a garbage token": {"Authorization", "Bearer garbage"},
		"basic auth":      {"Authorization", basicAuth},
	} {
		r := g.do(http.MethodGet, "/only/orders", nil, headers...)
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, r.Status)
		}
		if c := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, `Bearer realm="wxauth"`) {
			t.Errorf("%s: WWW-Authenticate %q, want the Bearer challenge", name, c)
		}
	}
	for name, auth := range map[string]string{"no credential": "", "a wrong password": "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:wrong"))} {
		headers := []string{"X-WX-OPENID", "forged"}
		if auth != "" {
			headers = append(headers, "Authorization", auth)
		}
		if r := g.do(http.MethodGet, "/mixed/orders", nil, headers...); r.Status != http.StatusUnauthorized {
			t.Errorf("mixed, %s: %d, want 401", name, r.Status)
		}
	}
	if upstream.Hits() != hits {
		t.Fatal("a refused request reached the upstream")
	}
	r := g.do(http.MethodGet, "/mixed/orders", nil, "Authorization", basicAuth, "X-WX-OPENID", "forged", "X_Wx-OpenId", "forged", "x-wx_appid", "forged")
	h := upstream.LastHeaders()
	if r.Status != http.StatusOK || h.Get("X-Test-User") != "ops" || h.Get("X-Wx-Openid") != "" || len(h.Values("X_wx-openid")) != 0 || len(h.Values("X-Wx_appid")) != 0 {
		t.Errorf("basic auth beside the provider: %d, user %q, identity headers %v", r.Status, h.Get("X-Test-User"), h)
	}
}
