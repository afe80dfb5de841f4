package integration

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// A lost refresh answer, retried; ten parallel refreshes of one token:
// within the grace every one gets the same successor, the session lives
// on, and one live refresh token remains. Past the grace the spent token is
// theft. Fails if retries within the grace end the session.
func TestRefreshGrace(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\trefresh_grace 2s\n"})
	s := g.login("grace")
	answers := make([]*response, 10)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = g.refresh(s.RefreshToken)
		}()
	}
	wg.Wait()
	spent := time.Now()
	first := answers[0].Session(t, "refresh")
	for i, r := range answers {
		got := r.Session(t, "parallel refresh")
		if got.RefreshToken != first.RefreshToken {
			t.Fatalf("refresh %d got another successor", i)
		}
		if r := g.get("/", got.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("refresh %d's access token refused: %d %s", i, r.Status, r.Body)
		}
	}
	next := g.refresh(first.RefreshToken).Session(t, "the successor refreshes")

	time.Sleep(time.Until(spent.Add(2500 * time.Millisecond)))
	g.refresh(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	g.refresh(next.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	g.get("/", next.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")
	if logs := g.Logs(); !strings.Contains(logs, `"result":"retried"`) {
		t.Error("no refresh was logged as retried")
	}
}

// Two tabs load a page at the same moment after the access cookie
// expired: both come back logged in through the web login's refresh
// cookie, with the same new session, and neither is sent to the platform.
// The refreshes are logged and counted. Fails if the second tab is taken
// for a thief.
func TestWebLoginTwoTabs(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: webApps + "\t\taccess_ttl 1s\n"})
	_, _, refresh := g.webSession()
	time.Sleep(2100 * time.Millisecond) // a 1s token lives less than 2s
	authorize := len(g.Platform.AuthorizeRequests())
	before := strings.Count(g.Logs(), `"msg":"refresh"`)
	refreshes := func() float64 {
		m := scrape(t, adminURL+"/metrics")
		return m[`caddy_wxauth_refreshes_total{result="ok"}`] + m[`caddy_wxauth_refreshes_total{result="retried"}`]
	}
	counted := refreshes()

	tabs := make([]*response, 2)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tabs[i] = g.do(http.MethodGet, "/wx/web/login?next=/tab", nil, "Cookie", "wxauth_refresh="+refresh.Value, "User-Agent", weChatUA)
		}()
	}
	wg.Wait()
	var refreshCookies []string
	for i, r := range tabs {
		if r.Status != http.StatusFound || r.Header.Get("Location") != "/tab" {
			t.Fatalf("tab %d: %d to %q, want back to /tab", i, r.Status, r.Header.Get("Location"))
		}
		c := cookies(r)
		if c["wxauth_token"] == nil || c["wxauth_refresh"] == nil {
			t.Fatalf("tab %d got no session cookies", i)
		}
		refreshCookies = append(refreshCookies, c["wxauth_refresh"].Value)
		if r := g.get("/orders", "", "Cookie", "wxauth_token="+c["wxauth_token"].Value); r.Status != http.StatusOK {
			t.Errorf("tab %d's access cookie refused: %d", i, r.Status)
		}
	}
	if refreshCookies[0] != refreshCookies[1] {
		t.Error("the two tabs hold different refresh tokens")
	}
	if len(g.Platform.AuthorizeRequests()) != authorize {
		t.Error("a tab was sent to the platform")
	}
	if n := strings.Count(g.Logs(), `"msg":"refresh"`) - before; n != 2 {
		t.Errorf("%d refresh lines for the two tabs, want 2", n)
	}
	if n := refreshes() - counted; n != 2 {
		t.Errorf("caddy_wxauth_refreshes_total went up by %v for the two tabs, want 2", n)
	}
}

// A revocation lasts until the session's newest access token expires: a
// site with access_ttl 3s logs out a session whose token another site on
// the same storage issued for 2h, and seconds later the token is still
// refused on both. Fails if the revocation lives for the revoking site's
// access_ttl.
func TestRevocationOutlivesTheRevokingSitesAccessTTL(t *testing.T) {
	port := strconv.Itoa(e2etest.FreePort(t))
	g := startGateway(t, gatewayConfig{
		Block: defaultBlock + "\t\trevocation_sync 1s\n",
		AfterSite: `http://127.0.0.1:` + port + ` {
	wxauth {
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
		}
		api_base {api_base}
		access_ttl 3s
		revocation_sync 1s
		rate_limit off
	}
	reverse_proxy {upstream}
}
`})
	short := "http://127.0.0.1:" + port
	s := g.login("two-sites")
	r := g.do(http.MethodPost, short+"/wx/logout", nil, bearer(s.AccessToken)...)
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout on the short site: %d %s", r.Status, r.Body)
	}
	time.Sleep(4500 * time.Millisecond)
	g.get("/orders", s.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")
	g.do(http.MethodGet, short+"/orders", nil, bearer(s.AccessToken)...).Error(t, http.StatusUnauthorized, "token_revoked")
}
