package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// checkCleared asserts that a logout answer clears both session cookies,
// each with its own path.
func checkCleared(t *testing.T, r *response) {
	t.Helper()
	want := map[string]bool{"wxauth_token|/": false, "wxauth_refresh|/wx/": false}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		key := c.Name + "|" + c.Path
		if _, ok := want[key]; ok && c.MaxAge < 0 && c.Value == "" {
			want[key] = true
		}
	}
	for key, cleared := range want {
		if !cleared {
			t.Errorf("the answer does not clear %s: Set-Cookie %q", key, r.Header.Values("Set-Cookie"))
		}
	}
}

// A browser logs out with whatever it still holds: an access cookie that
// expired hours ago, or only its refresh cookie. The session ends (its
// refresh cookie no longer brings it back without the platform), and both
// cookies are cleared. Fails if logout needs a live access token, or if
// the refresh cookie never reaches it.
func TestBrowserLogoutEndsTheSession(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps + "\t\taccess_ttl 1s\n"})

	t.Run("expired access cookie", func(t *testing.T) {
		session, _, refresh := g.webSession()
		time.Sleep(2100 * time.Millisecond) // a 1s token lives less than 2s
		g.get("/orders", "", "Cookie", session).Error(t, http.StatusUnauthorized, "token_expired")
		out := g.do(http.MethodPost, "/wx/logout", nil, "Cookie", session, "Sec-Fetch-Site", "same-origin")
		if out.Status != http.StatusNoContent {
			t.Fatalf("logout with an expired access cookie: %d %s", out.Status, out.Body)
		}
		checkCleared(t, out)
		// No way back in without the platform.
		authorize := len(g.Platform.AuthorizeRequests())
		back := g.do(http.MethodGet, "/wx/web/login?next=/x", nil, "Cookie", "wxauth_refresh="+refresh.Value, "User-Agent", weChatUA)
		if back.Status != http.StatusFound || strings.HasPrefix(back.Header.Get("Location"), "/x") {
			t.Fatalf("after logout the refresh cookie logged the browser back in: %d to %q", back.Status, back.Header.Get("Location"))
		}
		g.webLogin("/wx/web/login", "User-Agent", weChatUA).sessionCookie(t) // the platform is asked again
		if len(g.Platform.AuthorizeRequests()) == authorize {
			t.Error("the new login did not go to the platform")
		}
	})

	t.Run("refresh cookie only", func(t *testing.T) {
		g.load(gatewayConfig{Block: webApps}) // access tokens that stay valid
		_, access, refresh := g.webSession()
		out := g.do(http.MethodPost, "/wx/logout", nil, "Cookie", "wxauth_refresh="+refresh.Value)
		if out.Status != http.StatusNoContent {
			t.Fatalf("logout with only the refresh cookie: %d %s", out.Status, out.Body)
		}
		checkCleared(t, out)
		g.get("/orders", "", "Cookie", "wxauth_token="+access.Value).Error(t, http.StatusUnauthorized, "token_revoked")
	})

	t.Run("a bad access cookie beside a good refresh cookie", func(t *testing.T) {
		_, access, refresh := g.webSession()
		out := g.do(http.MethodPost, "/wx/logout", nil, "Cookie", "wxauth_token=garbage; wxauth_refresh="+refresh.Value)
		if out.Status != http.StatusNoContent {
			t.Fatalf("logout: %d %s", out.Status, out.Body)
		}
		g.get("/orders", "", "Cookie", "wxauth_token="+access.Value).Error(t, http.StatusUnauthorized, "token_revoked")
	})

	t.Run("refusals still clear the cookies", func(t *testing.T) {
		for _, cookie := range []string{"", "wxauth_refresh=garbage.garbage", "wxauth_token=garbage"} {
			headers := []string{}
			if cookie != "" {
				headers = []string{"Cookie", cookie}
			}
			r := g.do(http.MethodPost, "/wx/logout", nil, headers...)
			if r.Status != http.StatusUnauthorized {
				t.Errorf("logout with %q: %d %s, want 401", cookie, r.Status, r.Body)
			}
			checkCleared(t, r)
		}
	})
}

// A Bearer client whose access token expired can still log out; with
// everywhere, every session of the user ends, and no one else's.
func TestLogoutEverywhere(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\taccess_ttl 1s\n"})
	phone, tablet := g.login("lost-phone"), g.login("lost-phone")
	other := g.login("someone-else")
	time.Sleep(2100 * time.Millisecond) // every access token (1s: less than 2s) has expired
	r := g.postJSON("/wx/logout", map[string]bool{"everywhere": true}, bearer(phone.AccessToken)...)
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout everywhere with an expired token: %d %s", r.Status, r.Body)
	}
	for _, s := range []session{phone, tablet} {
		g.refresh(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	}
	g.refresh(other.RefreshToken).Session(t, "another user's refresh")
	if !strings.Contains(g.Logs(), `"sessions_ended":2`) {
		t.Error("the log does not say that two sessions ended")
	}
	// A body that is not the documented one is refused before anything ends.
	s := g.login("body-check")
	g.do(http.MethodPost, "/wx/logout", []byte("everywhere=1"), append(bearer(s.AccessToken), "Content-Type", "application/x-www-form-urlencoded")...).Error(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	g.refresh(s.RefreshToken).Session(t, "refresh after a refused logout")
}
