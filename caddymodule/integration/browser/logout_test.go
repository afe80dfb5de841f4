package browser

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// shortAccess gives access tokens the shortest life that still outlives a
// redirect: a token's expiry is whole seconds (JWT), so with access_ttl 1s
// a token may have only milliseconds left when it is issued, and the page
// the login lands on could already refuse it.
const shortAccess = "access_ttl 2s"

// logoutFromPage posts /wx/logout with fetch() from the site's own page.
func logoutFromPage(tb *tab) fetchResult {
	tb.t.Helper()
	tb.visit("/static/page.html")
	return tb.fetch(http.MethodPost, "/wx/logout", fetchOptions{})
}

// mustGoToPlatform loads a gated page and checks that the browser had to
// ask the platform again (the sandbox's authorize page) to get in: no
// cookie it kept was a way back in.
func mustGoToPlatform(t *testing.T, tb *tab, page string) {
	t.Helper()
	nav := tb.visit(page)
	if !nav.passedThrough("/wx/web/sandbox/connect/") {
		t.Errorf("after the logout, loading %s got back in without the platform; chain:%s", page, chainString(nav.Chain))
	}
	if nav.Final.Path != page {
		t.Errorf("after the logout, loading %s ended at %s; chain:%s", page, nav.Final, chainString(nav.Chain))
	}
}

// gateGet sends a gated GET outside the browser, with this Cookie header,
// as someone who copied the cookie would.
func gateGet(t *testing.T, g *gateway, path, cookie string) *e2etest.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return &e2etest.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
}

// Logout from the site's own page with a live access cookie: 204, the
// access cookie is gone, the session is dead (a copy of the cookie gets
// token_revoked), and the next page load has to go to the platform.
func TestLogoutFromOwnPage(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	b, tb := startBrowser(t, g)
	login(tb, "/static/page.html")
	token := b.cookie("wxauth_token").Value

	if r := logoutFromPage(tb); r.Status != http.StatusNoContent {
		t.Fatalf("logout from the page: %d %s, want 204", r.Status, r.Body)
	}
	if c := b.cookie("wxauth_token"); c != nil {
		t.Errorf("the logout left the access cookie: %s", describeCookie(c))
	}
	gateGet(t, g, "/app/copied", "wxauth_token="+token).Error(t, http.StatusUnauthorized, "token_revoked")
	mustGoToPlatform(t, tb, "/app/again")
}

// The contract: a logout clears both cookies. The refresh cookie has
// Path=/wx/web/, so the browser does not send it to /wx/logout, and a
// logout that only clears the cookies it was sent leaves it behind.
//
// Fails until the logout fix (main at 76078d2): the refresh
// cookie stays in the jar (dead, but there).
func TestLogoutFromOwnPageLeavesNoCookie(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{})
	b, tb := startBrowser(t, g)
	login(tb, "/static/page.html")

	if r := logoutFromPage(tb); r.Status != http.StatusNoContent {
		t.Fatalf("logout from the page: %d %s, want 204", r.Status, r.Body)
	}
	if left := b.wxauthCookies(); len(left) != 0 {
		t.Errorf("after the logout the browser still holds %s", strings.Join(left, ", "))
	}
}

// Logout after the access cookie expired (the browser dropped it; only
// the refresh cookie is left): still 204, no wxauth cookie left, and no
// way back in without the platform.
//
// Fails until the logout fix (main at 76078d2): the page's
// POST /wx/logout carries no cookie at all (the refresh cookie's
// Path=/wx/web/ keeps it away), so it answers 401 login_required, the
// refresh cookie stays, and the next page load comes straight back in
// through it.
func TestLogoutAfterAccessCookieExpired(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{Block: shortAccess})
	b, tb := startBrowser(t, g)
	login(tb, "/static/page.html")
	b.waitCookieGone("wxauth_token", 10*time.Second)

	if r := logoutFromPage(tb); r.Status != http.StatusNoContent {
		t.Errorf("logout from the page after the access cookie expired: %d %s, want 204", r.Status, r.Body)
	}
	if left := b.wxauthCookies(); len(left) != 0 {
		t.Errorf("after the logout the browser still holds %s", strings.Join(left, ", "))
	}
	mustGoToPlatform(t, tb, "/app/after-logout")
}
