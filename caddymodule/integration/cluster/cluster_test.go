package cluster

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// A token made by one node passes the gate of another. Fails if the signing
// key is per process (or per node) instead of shared through storage: the
// two nodes start at the same moment on empty storage, so both race to
// create the key, and only one key may win.
func TestTokenFromOneNodeWorksOnAnother(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.launch("a", nodeConfig{}), c.launch("b", nodeConfig{})
	a.waitReady()
	b.waitReady()

	s := a.login("cross-a")
	if want := fakeplatform.OpenID(testAppID, "cross-a"); s.OpenID != want {
		t.Fatalf("openid = %q, want %q", s.OpenID, want)
	}
	b.mustPass("/orders", s)
	if got := c.upstream.LastHeaders().Get("X-Wx-Appid"); got != testAppID {
		t.Errorf("via b the upstream saw X-WX-APPID %q, want %q", got, testAppID)
	}

	// And the other way round.
	s2 := b.login("cross-b")
	a.mustPass("/orders", s2)
}

// A refresh token works on any node, spends once everywhere, and a replayed
// spent token revokes the whole session on every node. Fails if sessions
// live in node memory, if the spent state is not shared, or if a node keeps
// trusting a cached access token of a revoked session past the sync bound.
func TestRefreshOnAnyNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	// No grace: a spent token presented again is theft at once (see
	// TestRefreshGraceAcrossNodes for retries).
	a := c.start("a", nodeConfig{Block: syncBlock + "\n\t\trefresh_grace 0"})
	b := c.start("b", nodeConfig{Block: syncBlock + "\n\t\trefresh_grace 0"})

	s1 := a.login("refresh-any")
	a.mustPass("/before", s1) // a has s1's access token cached

	s2 := b.refresh(s1) // made on a, spent on b
	a.mustPass("/after-b", s2)
	s3 := a.refresh(s2) // b's new refresh token works on a
	a.mustPass("/s3", s3)
	b.mustPass("/s3", s3) // both nodes now have s3's access token cached

	// s1's refresh token was spent on b; presenting it again on a is a
	// replay: the answer is token_revoked, and the session is gone.
	a.refreshRaw(s1.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	replayed := time.Now()

	const bound = 5 * time.Second // revocation_sync 1s, with room for a slow machine
	for _, n := range []*node{a, b} {
		d := n.waitRevoked(s3.AccessToken, replayed, bound)
		t.Logf("node %s refused the newest access token %v after the replay", n.name, d.Round(time.Millisecond))
	}
	// Every token of the session: older access tokens, and the newest
	// refresh token, which was never spent.
	for _, n := range []*node{a, b} {
		n.mustRefuse("/s1", s1.AccessToken, "token_revoked")
		n.mustRefuse("/s2", s2.AccessToken, "token_revoked")
	}
	b.refreshRaw(s3.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
}

// A logout on one node is enforced at once on that node and within the
// revocation_sync bound on another node that has the token cached. Fails if
// revocations are only kept in the memory of the node that logged out, or if
// the other node's verified-token cache outlives the revocation.
func TestLogoutPropagates(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{Block: syncBlock})
	b := c.start("b", nodeConfig{Block: syncBlock})

	// Two sessions of one user (the same code twice): logging one out must
	// leave the other alone.
	s := a.login("logout")
	other := a.login("logout")
	if other.OpenID != s.OpenID {
		t.Fatalf("the same code gave two users: %s, %s", s.OpenID, other.OpenID)
	}
	b.mustPass("/cached", s) // b has the token cached now
	b.mustPass("/cached", other)

	r := a.logout(s.AccessToken)
	loggedOut := time.Now()
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout: status %d, want 204: %s", r.Status, r.Body)
	}
	if len(r.Body) != 0 {
		t.Errorf("logout answered a body with 204: %q", r.Body)
	}

	// The node that logged out refuses at once, at the gate and at Bearer
	// endpoints, and the session's refresh token is dead.
	a.mustRefuse("/orders", s.AccessToken, "token_revoked")
	a.logout(s.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")
	a.refreshRaw(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")

	// The other node, within revocation_sync (1s) + 1s; polled for up to 5s
	// so a slow propagation reports how slow it was.
	d := b.waitRevoked(s.AccessToken, loggedOut, 5*time.Second)
	t.Logf("node b refused the logged-out token %v after the logout (revocation_sync 1s)", d.Round(time.Millisecond))
	if limit := 3 * time.Second; d > limit {
		t.Errorf("node b took %v to enforce the logout; the bound is revocation_sync (1s) plus 2s of slack for a loaded CI machine = %v", d.Round(time.Millisecond), limit)
	}
	b.mustRefuse("/any/other/path", s.AccessToken, "token_revoked")
	b.logout(s.AccessToken).Error(t, http.StatusUnauthorized, "token_revoked")

	// The user's other session is untouched, on both nodes.
	b.mustPass("/other", other)
	a.mustPass("/other", other)
	b.refresh(other)
}

// One refresh token posted to two nodes at the same moment gives at most one
// new session. Fails if spending a refresh token is a read-then-write
// without a storage lock (or compare-and-swap), so both nodes see it unspent.
//
// With the refresh grace off; TestRefreshGraceAcrossNodes has the same race
// within the grace, where both nodes answer the one successor.
func TestConcurrentDoubleRefresh(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{Block: "refresh_grace 0"})
	b := c.start("b", nodeConfig{Block: "refresh_grace 0"})
	nodes := []*node{a, b}

	winners := 0
	for round := range 5 {
		s := a.login("double-" + string(rune('a'+round)))
		body := jsonBody(t, map[string]string{"refresh_token": s.RefreshToken})
		reqs := make([]*http.Request, len(nodes))
		for i, n := range nodes {
			req, err := n.request(http.MethodPost, "/wx/refresh", body, "Content-Type", "application/json")
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = req
		}
		answers := sendAtOnce(t, nodes, reqs)

		ok := 0
		for i, r := range answers {
			switch r.Status {
			case http.StatusOK:
				ok++
				decodeSession(t, "refresh on "+nodes[i].name, r)
			case http.StatusUnauthorized:
				r.Error(t, http.StatusUnauthorized, "token_revoked")
			default:
				t.Fatalf("round %d: node %s answered %d %s; want 200 or 401 token_revoked", round, nodes[i].name, r.Status, r.Body)
			}
		}
		if ok > 1 {
			t.Fatalf("round %d: one refresh token was spent twice: both nodes answered 200", round)
		}
		winners += ok
		t.Logf("round %d: a %d, b %d", round, answers[0].Status, answers[1].Status)
	}
	// Refusing both is safe but means refresh fails under contention; with
	// a storage lock one of the two always wins.
	if winners == 0 {
		t.Errorf("in 5 rounds neither concurrent refresh ever succeeded")
	}
}

// Tokens outlive the process that issued them: a new node on the same
// storage accepts them. Fails if the signing key or sessions are kept in
// memory only.
func TestRestartKeepsTokens(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{})
	s := a.login("restart")
	a.mustPass("/before", s)
	a.stop()

	b := c.start("b", nodeConfig{})
	t.Run("access", func(t *testing.T) {
		defer b.use(t)()
		b.mustPass("/after", s)
	})
	t.Run("refresh", func(t *testing.T) {
		defer b.use(t)()
		s2 := b.refresh(s)
		b.mustPass("/refreshed", s2)
		// Within the grace the spent token is a retry, after a restart
		// too: the same successor, and the session goes on.
		again := decodeSession(t, "retried refresh", b.refreshRaw(s.RefreshToken))
		if again.RefreshToken != s2.RefreshToken {
			t.Errorf("a retried refresh got another successor")
		}
		b.mustPass("/retried", again)
	})
}

// A config reload (a new handler instance in the same process) keeps tokens
// and sessions. Fails if the reload makes a new signing key, or loses what
// the old instance kept in memory.
func TestReloadKeepsTokens(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{})
	s := a.login("reload")
	a.mustPass("/before", s)
	if s.ExpiresIn < 7190 || s.ExpiresIn > 7200 {
		t.Fatalf("expires_in = %d before the reload, want the 2h default", s.ExpiresIn)
	}

	a.reload(nodeConfig{Block: "access_ttl 30m", Extra: "header X-Reloaded yes"})
	deadline := time.Now().Add(10 * time.Second)
	for a.get("/probe", "").Header.Get("X-Reloaded") != "yes" {
		if time.Now().After(deadline) {
			t.Fatal("the reloaded config is not in effect 10s after caddy reload returned")
		}
		time.Sleep(50 * time.Millisecond)
	}

	a.mustPass("/after", s)
	s2 := a.refresh(s)
	// The new access_ttl shows the wxauth handler itself was replaced, not
	// just the site around it.
	if s2.ExpiresIn < 1790 || s2.ExpiresIn > 1800 {
		t.Errorf("expires_in = %d after reloading with access_ttl 30m, want 1800", s2.ExpiresIn)
	}
	a.mustPass("/refreshed", s2)
}

// Malformed and unknown tokens at /wx/refresh and /wx/logout get the
// contract's errors. One node is enough. Fails if a bad body is taken for an
// unknown token (or the other way round), or if logout skips the Bearer check.
func TestRefreshAndLogoutErrors(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{})
	s := a.login("errors")

	a.postJSON("/wx/refresh", map[string]any{}).Error(t, http.StatusBadRequest, "invalid_request")
	a.postJSON("/wx/refresh", map[string]any{"refresh_token": 42}).Error(t, http.StatusBadRequest, "invalid_request")
	a.refreshRaw("not-a-refresh-token").Error(t, http.StatusUnauthorized, "token_invalid")
	// An access token is not a refresh token.
	a.refreshRaw(s.AccessToken).Error(t, http.StatusUnauthorized, "token_invalid")

	a.do(http.MethodPost, "/wx/logout", nil).Error(t, http.StatusUnauthorized, "login_required")
	a.logout("not-a-token").Error(t, http.StatusUnauthorized, "token_invalid")
	// None of that touched the session.
	a.mustPass("/still", s)
	a.refresh(s)
}

// Refresh-token expiry is not tested here: access_ttl is at least 1m and
// refresh_ttl at least access_ttl, so an expired refresh token takes over a
// minute of waiting, more than this package's time budget.

// A client retrying against a load balancer posts one code to two nodes
// at the same instant: both log the code's user in, and the platform is
// asked once per code (the code is claimed in storage first), in 30 of 30
// rounds.
func TestSameCodeOnTwoNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	nodes := c.startAll(nodeConfig{Block: "rate_limit off"}, "a", "b")
	sameCodeAtOnce(t, c, nodes, "two-nodes", 30)
}

// A web-view handoff ticket asked for on one node opens the page on
// another (the page's host may be served by any node), once.
func TestHandoffAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	nodes := c.startAll(nodeConfig{}, "a", "b")
	a, b := nodes[0], nodes[1]
	s := a.login("handoff-across")
	r := a.do(http.MethodPost, "/wx/handoff", nil, "Authorization", "Bearer "+s.AccessToken)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /wx/handoff on a: %d %s", r.Status, r.Body)
	}
	var ticket struct{ Ticket string }
	if err := json.Unmarshal(r.Body, &ticket); err != nil {
		t.Fatal(err)
	}
	redeem := "/wx/web/handoff?ticket=" + url.QueryEscape(ticket.Ticket) + "&next=/page"
	page := b.do(http.MethodGet, redeem, nil)
	if page.Status != http.StatusFound || page.Header.Get("Location") != "/page" {
		t.Fatalf("redeem on b: %d %q %s", page.Status, page.Header.Get("Location"), page.Body)
	}
	if again := a.do(http.MethodGet, redeem, nil); again.Status != http.StatusBadRequest || again.Code() != "invalid_code" {
		t.Errorf("the same ticket again on a: %d %s", again.Status, again.Body)
	}
}
