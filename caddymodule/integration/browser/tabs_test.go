package browser

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Two tabs of one browser load a gated page at the same moment after the
// access cookie expired: both go through /wx/web/login with the same
// refresh cookie. Both must end logged in, as the same user, without a
// trip to the platform: the second presentation of the refresh token is
// a parallel tab, not a theft (refresh_grace).
//
// Fails until the refresh fix (main at 76078d2): the second request is
// taken for the reuse of a spent refresh token, the session is revoked,
// and that tab is sent to the platform to log in again.
func TestTwoTabsRefreshAtOnce(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{Block: shortAccess})
	b, tab1 := startBrowser(t, g)
	login(tab1, "/static/page.html")
	tab2 := b.newTab("tab2")
	tab2.visit("/static/page.html")
	b.waitCookieGone("wxauth_token", 10*time.Second)
	refresh := b.cookie("wxauth_refresh")
	if refresh == nil {
		t.Fatal("no refresh cookie after the login")
	}

	// Each tab's request to the web login is held until both made theirs,
	// so both start together, with the refresh cookie of the jar.
	tabs := []*tab{tab1, tab2}
	pages := []string{"/app/from-tab1", "/app/from-tab2"}
	releaseAll := holdRequests(t, tabs, g.URL+"/wx/web/login*")
	marks := make([]int, len(tabs))
	errs := make([]error, len(tabs))
	var wg sync.WaitGroup
	for i, tb := range tabs {
		marks[i] = tb.mark()
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = tb.navigate(pages[i])
		}()
	}
	releaseAll()
	wg.Wait()

	for i, tb := range tabs {
		nav := tb.finishVisit(marks[i], pages[i], errs[i])
		if nav.Err != nil || nav.Final.Path != pages[i] {
			t.Errorf("%s: loading %s ended at %s (%v); chain:%s", tb.name, pages[i], nav.Final, nav.Err, chainString(nav.Chain))
			continue
		}
		if nav.passedThrough("/wx/web/sandbox/connect/") {
			t.Errorf("%s was sent to the platform to log in again; chain:%s", tb.name, chainString(nav.Chain))
		}
		// That both presented the same refresh token is what makes this
		// the race it means to be.
		for _, r := range nav.Chain {
			if strings.HasPrefix(r.URL, g.URL+"/wx/web/login?") {
				if got := r.Sent["wxauth_refresh"]; got != refresh.Value {
					t.Errorf("%s sent the web login refresh cookie %q, want the one both tabs shared (%q): the tabs did not race", tb.name, short(got), short(refresh.Value))
				}
				break
			}
		}
		seen := g.upstreamSaw(pages[i])
		if len(seen) != 1 || seen[0].Header.Get("X-Wx-Openid") != aliceOpenID {
			t.Errorf("%s: the upstream got %s %d times, want once as %s: %s", tb.name, pages[i], len(seen), aliceOpenID, g.upstreamSummary())
		}
	}

	// The session lives on in both tabs.
	for _, tb := range tabs {
		tb.visit("/static/page.html")
		if r := tb.fetch(http.MethodGet, "/api/still-in", fetchOptions{}); r.Status != http.StatusOK {
			t.Errorf("%s: after the parallel refresh, fetch /api/still-in: %d %s", tb.name, r.Status, r.Body)
		}
	}
}
