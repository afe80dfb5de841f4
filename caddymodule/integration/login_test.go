package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

func TestLoginAnswersSessionAndGateForwardsIdentity(t *testing.T) {
	g := startGateway(t, gatewayConfig{})

	s := g.login("alice")
	if s.TokenType != "Bearer" || s.AccessToken == "" || s.RefreshToken == "" {
		t.Fatalf("session answer incomplete: %+v", s)
	}
	if s.ExpiresIn < 7190 || s.ExpiresIn > 7200 {
		t.Errorf("expires_in = %d, want the 2h default", s.ExpiresIn)
	}
	if want := fakeplatform.OpenID(testAppID, "alice"); s.OpenID != want {
		t.Errorf("openid = %q, want %q", s.OpenID, want)
	}
	if s.UnionID != fakeplatform.UnionID("alice") || s.AppID != testAppID {
		t.Errorf("unionid/appid = %q/%q", s.UnionID, s.AppID)
	}
	if s.HasProfile || s.Profile != nil {
		t.Errorf("a fresh user has no profile: %+v", s)
	}
	// The raw answer must carry "profile": null, as the contract says.
	raw := g.postJSON("/wx/login", map[string]string{"code": "alice-2"})
	if !strings.Contains(string(raw.Body), `"profile":null`) {
		t.Errorf("answer lacks profile null: %s", raw.Body)
	}
	if cc := raw.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q; answers with tokens must not be cached", cc)
	}

	r := g.get("/orders", s.AccessToken)
	if r.Status != http.StatusOK {
		t.Fatalf("gate refused a fresh token: %d %s", r.Status, r.Body)
	}
	h := g.Upstream.LastHeaders()
	for name, want := range map[string]string{
		"X-Wx-Openid":  s.OpenID,
		"X-Wx-Appid":   testAppID,
		"X-Wx-Unionid": s.UnionID,
		"X-Wx-Source":  "wechat-miniprogram",
	} {
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("upstream %s = %q, want [%q]", name, got, want)
		}
	}
	if got := h.Get("Authorization"); got != "" {
		t.Errorf("the access token reached the upstream: %q", got)
	}
	if h.Get("X-Wx-Phone") != "" || h.Get("X-Wx-Nickname") != "" {
		t.Errorf("headers without data were sent: %v", h)
	}
}

func TestGateRefusesWithoutToken(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	r := g.get("/orders", "")
	r.Error(t, http.StatusUnauthorized, "login_required")
	if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="wxauth"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	// Other schemes are not a login either.
	g.get("/orders", "", "Authorization", "Basic YWxpY2U6c2VjcmV0").Error(t, http.StatusUnauthorized, "login_required")
	if g.Upstream.Hits() != 0 {
		t.Errorf("refused requests reached the upstream %d times", g.Upstream.Hits())
	}
}

func TestGateRefusesBadTokens(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	good := g.login("bob").AccessToken
	parts := strings.Split(good, ".")

	for name, tok := range map[string]string{
		"garbage":          "not-a-token",
		"empty":            "",
		"three dots":       "a.b.c",
		"tampered payload": parts[0] + "." + tamper(t, parts[1]) + "." + parts[2],
		"alg none":         noneToken(t, parts[1]),
		"hs256 guessed":    hs256Token(t, parts[1], "secret"),
		"oversized":        strings.Repeat("a", 10000) + "." + parts[1] + "." + parts[2],
	} {
		t.Run(name, func(t *testing.T) {
			r := g.do(http.MethodGet, "/orders", nil, "Authorization", "Bearer "+tok)
			r.Error(t, http.StatusUnauthorized, "token_invalid")
			if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="wxauth", error="invalid_token"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	if g.Upstream.Hits() != 0 {
		t.Errorf("forged tokens reached the upstream %d times", g.Upstream.Hits())
	}
	// The scheme is case-insensitive, and the good token still works.
	if r := g.do(http.MethodGet, "/orders", nil, "Authorization", "bearer "+good); r.Status != http.StatusOK {
		t.Errorf("lower-case bearer refused: %d", r.Status)
	}
}

func TestLoginIsIdempotentPerCode(t *testing.T) {
	g := startGateway(t, gatewayConfig{})

	const posts = 20
	var wg sync.WaitGroup
	results := make([]*response, posts)
	for i := range posts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.postJSON("/wx/login", map[string]string{"code": "double-tap"})
		}()
	}
	wg.Wait()
	openids := map[string]bool{}
	refresh := map[string]bool{}
	for i, r := range results {
		if r.Status != http.StatusOK {
			t.Fatalf("post %d: %d %s", i, r.Status, r.Body)
		}
		var s session
		if err := json.Unmarshal(r.Body, &s); err != nil {
			t.Fatal(err)
		}
		openids[s.OpenID] = true
		refresh[s.RefreshToken] = true
	}
	if len(openids) != 1 {
		t.Errorf("one code logged in %d different users", len(openids))
	}
	if len(refresh) != posts {
		t.Errorf("%d distinct refresh tokens for %d posts; each post needs its own session", len(refresh), posts)
	}
	if n := g.Platform.CodeCalls("double-tap"); n != 1 {
		t.Errorf("the platform was asked %d times for one code, want 1", n)
	}

	// A later retry of the same code is still the same user, still one call.
	s := g.login("double-tap")
	if !openids[s.OpenID] {
		t.Errorf("retry logged in another user")
	}
	if n := g.Platform.CodeCalls("double-tap"); n != 1 {
		t.Errorf("the platform was asked %d times after a retry, want 1", n)
	}
}

func TestLoginAfterFailureAsksAgain(t *testing.T) {
	// A failed exchange is not remembered: the code may still be good.
	g := startGateway(t, gatewayConfig{})
	g.postJSON("/wx/login", map[string]string{"code": "http500"}).Error(t, http.StatusBadGateway, "platform_unavailable")
	g.postJSON("/wx/login", map[string]string{"code": "http500"}).Error(t, http.StatusBadGateway, "platform_unavailable")
	if n := g.Platform.CodeCalls("http500"); n != 2 {
		t.Errorf("platform calls = %d, want 2", n)
	}
}

func TestLoginPlatformErrors(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	for _, tc := range []struct {
		code   string
		status int
		error  string
	}{
		{"invalid", http.StatusBadRequest, "invalid_code"},
		{"used", http.StatusBadRequest, "invalid_code"},
		{"blocked", http.StatusForbidden, "login_blocked"},
		{"limited", http.StatusTooManyRequests, "rate_limited"},
		{"busy", http.StatusBadGateway, "platform_unavailable"},
		{"http500", http.StatusBadGateway, "platform_unavailable"},
		{"garbage", http.StatusBadGateway, "platform_unavailable"},
		{"badopenid", http.StatusBadGateway, "platform_unavailable"},
		{"badkey", http.StatusBadGateway, "platform_unavailable"},
		{"slow", http.StatusBadGateway, "platform_unavailable"},
		{"quota", http.StatusBadGateway, "platform_unavailable"},
	} {
		t.Run(tc.code, func(t *testing.T) {
			r := g.postJSON("/wx/login", map[string]string{"code": tc.code})
			r.Error(t, tc.status, tc.error)
			if tc.error == "rate_limited" && r.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
	// -1 is retried once, then given up.
	if n := g.Platform.CodeCalls("busy"); n != 2 {
		t.Errorf("busy: platform calls = %d, want 2 (one retry)", n)
	}
	// busyonce succeeds on the retry.
	if s := g.login("busyonce"); s.OpenID == "" {
		t.Error("busyonce did not log in")
	}
	// A code used twice at the platform (another client used it first) is
	// invalid_code; a code we exchanged ourselves is not (idempotency).
	g.login("once")
}

func TestLoginWrongSecretIsPlatformUnavailable(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	g.Platform.AddApp(testAppID, "another-secret")
	r := g.postJSON("/wx/login", map[string]string{"code": "carol"})
	r.Error(t, http.StatusBadGateway, "platform_unavailable")
	if !strings.Contains(r.JSON(t)["message"].(string), "secret") {
		t.Errorf("message should point the operator at the secret: %s", r.Body)
	}
	if strings.Contains(string(r.Body), testSecret) {
		t.Fatal("the secret is in the answer")
	}
}
