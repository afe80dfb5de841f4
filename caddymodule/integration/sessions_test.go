package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// refresh posts a refresh token.
func (g *gateway) refresh(refreshToken string) *response {
	g.t.Helper()
	return g.postJSON("/wx/refresh", map[string]string{"refresh_token": refreshToken})
}

// With the refresh grace off, a spent refresh token presented again is
// theft at once (TestRefreshGrace has the retries within a grace).
func TestRefreshRotatesAndDetectsReuse(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\trefresh_grace 0\n"})
	first := g.login("mia")

	second := g.refresh(first.RefreshToken).Session(t, "refresh")
	// (The access token may come out identical within one second: EdDSA
	// is deterministic and the claims are the same.)
	if second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh did not rotate the refresh token")
	}
	if second.OpenID != first.OpenID || second.AppID != testAppID || second.TokenType != "Bearer" || second.ExpiresIn < 7100 {
		t.Errorf("refreshed session answer: %+v", second)
	}
	if r := g.get("/", second.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("refreshed access token refused: %d", r.Status)
	}
	if g.Upstream.LastHeaders().Get("X-Wx-Openid") != first.OpenID {
		t.Error("refreshed token names another user")
	}
	third := g.refresh(second.RefreshToken).Session(t, "refresh")

	// The first refresh token, spent twice over, comes back: theft.
	g.refresh(first.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	// The whole session is over: the newest refresh token and every access
	// token of the session.
	g.refresh(third.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	for _, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
		g.get("/", tok).Error(t, http.StatusUnauthorized, "token_revoked")
	}
	// Another session of the same user is untouched.
	other := g.login("mia-on-another-phone")
	_ = other
	again := g.login("mia")
	if r := g.get("/", again.AccessToken); r.Status != http.StatusOK {
		t.Errorf("a new login after theft detection refused: %d", r.Status)
	}
}

func TestRefreshErrors(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("noah")
	for name, body := range map[string]string{
		"missing":    `{}`,
		"mistyped":   `{"refresh_token":42}`,
		"empty":      `{"refresh_token":""}`,
		"not object": `"x"`,
	} {
		t.Run(name, func(t *testing.T) {
			g.do("POST", "/wx/refresh", []byte(body), "Content-Type", "application/json").Error(t, http.StatusBadRequest, "invalid_request")
		})
	}
	sid, _, _ := strings.Cut(s.RefreshToken, ".")
	for name, tok := range map[string]string{
		"garbage":                 "garbage",
		"unknown session":         "AAAAAAAAAAAAAAAAAAAAAA.xyz",
		"right session, guess":    sid + ".guessed-secret",
		"path trick":              "../../etc/passwd.x",
		"access token as refresh": s.AccessToken,
	} {
		t.Run(name, func(t *testing.T) {
			g.refresh(tok).Error(t, http.StatusUnauthorized, "token_invalid")
		})
	}
	// A guessed token for a known session must not end that session.
	if r := g.refresh(s.RefreshToken); r.Status != http.StatusOK {
		t.Fatalf("a wrong guess revoked the session: %d %s", r.Status, r.Body)
	}
	g.do("GET", "/wx/refresh", nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")
	g.do("POST", "/wx/refresh", []byte("refresh_token=x"), "Content-Type", "application/x-www-form-urlencoded").Error(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
}

func TestLogout(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("olga")
	keep := g.login("olga-second-device")
	if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}

	r := g.do("POST", "/wx/logout", nil, "Authorization", "Bearer "+s.AccessToken)
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	// The access token is dead at the gate, even though it was cached.
	g.get("/", s.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")
	if got := g.get("/", s.AccessToken).Header.Get("WWW-Authenticate"); got != `Bearer realm="wxauth", error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	// ... at the Bearer endpoints ...
	g.do("POST", "/wx/logout", nil, "Authorization", "Bearer "+s.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")
	// ... and its refresh token no longer refreshes.
	g.refresh(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")

	// The user's other session lives on.
	if r := g.get("/", keep.AccessToken); r.Status != http.StatusOK {
		t.Errorf("logout ended another session: %d", r.Status)
	}
	g.refresh(keep.RefreshToken).Session(t, "refresh")

	// Logout needs a token, and POST.
	g.do("POST", "/wx/logout", nil).Error(t, http.StatusUnauthorized, "login_required")
	g.do("POST", "/wx/logout", nil, "Authorization", "Bearer garbage").Error(t, http.StatusUnauthorized, "token_invalid")
	g.do("GET", "/wx/logout", nil, "Authorization", "Bearer "+keep.AccessToken).Error(t, http.StatusMethodNotAllowed, "invalid_request")
}

func TestAccessAndRefreshExpiry(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\taccess_ttl 1s\n\t\trefresh_ttl 2s\n"})
	s := g.login("pia")
	if s.ExpiresIn != 1 {
		t.Errorf("expires_in = %d, want 1", s.ExpiresIn)
	}
	if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	time.Sleep(2100 * time.Millisecond)
	// The cached token expires with the token.
	g.get("/", s.AccessToken).Error(t, http.StatusUnauthorized, "token_expired")
	g.refresh(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_expired")
}

func TestRestartKeepsTokens(t *testing.T) {
	// Same storage, a fresh Caddy config load after "stop": the signing key
	// and sessions come back from storage. (Separate processes are
	// exercised by the cluster tests.)
	g := startGateway(t, gatewayConfig{})
	s := g.login("quinn")
	g2 := startGateway(t, gatewayConfig{DataDir: g.DataDir, Block: defaultBlock + "\t\trevocation_sync 2s\n"})
	if r := g2.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("token refused after the restart: %d %s", r.Status, r.Body)
	}
	g2.refresh(s.RefreshToken).Session(t, "refresh")
}

func TestReloadKeepsTokensAndLeaksNothing(t *testing.T) {
	dataDir := t.TempDir()
	g := startGateway(t, gatewayConfig{DataDir: dataDir})
	s := g.login("ruth")
	if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}

	// Reloads that keep the state (a changed access_ttl) hand it over.
	g.load(gatewayConfig{Block: defaultBlock + "\t\taccess_ttl 30m\n"})
	if !strings.Contains(g.Logs(), "reusing the in-memory state") {
		t.Error("a reload that changed only access_ttl did not reuse the state")
	}

	// Settle, then count goroutines across reloads that keep the state and
	// reloads that replace it (a changed revocation_sync): neither may leave
	// goroutines behind.
	reload := func(i int) {
		block := defaultBlock
		switch i % 3 {
		case 1:
			block += "\t\taccess_ttl 30m\n"
		case 2:
			block += "\t\trevocation_sync 3s\n"
		}
		g.load(gatewayConfig{Block: block})
	}
	for i := range 3 {
		reload(i)
	}
	before := settledGoroutines()
	for i := range 12 {
		reload(i)
	}
	after := settledGoroutines()
	if after > before+3 {
		t.Errorf("goroutines grew from %d to %d over 12 reloads", before, after)
	}

	// The token of before the reloads still passes, and refreshes.
	if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("token refused after reloads: %d %s", r.Status, r.Body)
	}
	g.refresh(s.RefreshToken).Session(t, "refresh")
}

// settledGoroutines counts goroutines once the count stops changing.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

func TestStorageHoldsNoPlainRefreshToken(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("sam")
	_ = filepath.Walk(g.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		_, secret, _ := strings.Cut(s.RefreshToken, ".")
		if strings.Contains(string(b), secret) || strings.Contains(string(b), s.AccessToken) {
			t.Errorf("%s holds a token", path)
		}
		return nil
	})
}
