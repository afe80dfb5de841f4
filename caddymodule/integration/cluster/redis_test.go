package cluster

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// The tests in this file run their nodes on one Redis (caddy-storage-redis,
// a key prefix per test), the storage a real cluster is most likely to
// share. See the package comment for where the Redis and the binary come
// from.

// startAll launches one node per name at the same moment, then waits until
// every one answers: they race for whatever they create at start (the
// signing key).
func (c *cluster) startAll(cfg nodeConfig, names ...string) []*node {
	c.t.Helper()
	nodes := make([]*node, len(names))
	for i, name := range names {
		nodes[i] = c.launch(name, cfg)
	}
	for _, n := range nodes {
		n.waitReady()
	}
	return nodes
}

// mustUseRedis checks that the cluster's records are in Redis under this
// test's key prefix, so a harness that quietly ran the nodes on a folder
// cannot pass the Redis tests.
func (c *cluster) mustUseRedis() {
	c.t.Helper()
	got, err := c.redis.Do("KEYS", c.keyPrefix+"/wxauth/*")
	if err != nil {
		c.t.Fatalf("redis KEYS: %v", err)
	}
	if keys, _ := got.([]any); len(keys) == 0 {
		c.t.Fatalf("nothing under %s/wxauth/ in Redis at %s: the nodes do not store their records there", c.keyPrefix, c.redis.Addr)
	}
}

// reloadAndWait reloads n with cfg, whose Extra must set the header
// X-Reloaded: yes, and waits until the new config answers.
func (n *node) reloadAndWait(cfg nodeConfig) {
	n.t.Helper()
	n.reload(cfg)
	deadline := time.Now().Add(10 * time.Second)
	for n.get("/probe", "").Header.Get("X-Reloaded") != "yes" {
		if time.Now().After(deadline) {
			n.t.Fatalf("node %s: the reloaded config is not in effect 10s after caddy reload returned", n.name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logHas reports the lines of the node's Caddy log and process output that
// contain s.
func (n *node) logHas(s string) []string {
	n.t.Helper()
	var lines []string
	for _, p := range []string{n.logPath, n.proc.OutPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			n.t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, s) {
				lines = append(lines, line)
			}
		}
	}
	return lines
}

// A token made by any of three nodes on one Redis passes the gate of every
// node. The nodes start at the same moment on an empty prefix, so all
// three race to create the signing key; one key must win. Fails if the key
// is per node, or if the nodes do not share the Redis.
func TestRedisTokensAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	nodes := c.startAll(nodeConfig{}, "a", "b", "c")

	for _, from := range nodes {
		code := "across-" + from.name
		s := from.login(code)
		if want := fakeplatform.OpenID(testAppID, code); s.OpenID != want {
			t.Fatalf("login on %s: openid = %q, want %q", from.name, s.OpenID, want)
		}
		for _, n := range nodes {
			n.mustPass("/orders", s)
		}
	}
	c.mustUseRedis()
}

// A refresh token made on one node is spent on a second, its successor on a
// third; replaying a spent one ends the session on all three within the
// sync bound. Fails if the spent state is not shared through Redis, or a
// node keeps trusting a cached token of a revoked session.
func TestRedisRefreshOnAnyNode(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	cfg := nodeConfig{Block: syncBlock + "\n\t\trefresh_grace 0"}
	nodes := c.startAll(cfg, "a", "b", "c")
	a, b, cc := nodes[0], nodes[1], nodes[2]

	s1 := a.login("refresh-any")
	a.mustPass("/s1", s1)
	s2 := b.refresh(s1) // made on a, spent on b
	cc.mustPass("/s2", s2)
	s3 := cc.refresh(s2) // made on b, spent on c
	for _, n := range nodes {
		n.mustPass("/s3", s3) // cached on every node now
	}

	a.refreshRaw(s1.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	replayed := time.Now()
	for _, n := range nodes {
		d := n.waitRevoked(s3.AccessToken, replayed, 5*time.Second)
		t.Logf("node %s refused the newest access token %v after the replay", n.name, d.Round(time.Millisecond))
	}
	for _, n := range nodes {
		n.mustRefuse("/s2", s2.AccessToken, "token_revoked")
	}
	b.refreshRaw(s3.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	c.mustUseRedis()
}

// A logout on one of three nodes is enforced there at once and on the two
// others within revocation_sync (1s) plus slack, while the user's other
// session lives on. Fails if revocations do not travel through Redis.
func TestRedisLogoutPropagates(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	nodes := c.startAll(nodeConfig{Block: syncBlock}, "a", "b", "c")
	a := nodes[0]

	s := a.login("logout")
	other := a.login("logout") // the same code again: a second session of the user
	for _, n := range nodes[1:] {
		n.mustPass("/cached", s)
		n.mustPass("/cached", other)
	}

	if r := a.logout(s.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("logout: status %d, want 204: %s", r.Status, r.Body)
	}
	loggedOut := time.Now()
	a.mustRefuse("/at-once", s.AccessToken, "token_revoked")
	for _, n := range nodes[1:] {
		d := n.waitRevoked(s.AccessToken, loggedOut, 5*time.Second)
		t.Logf("node %s refused the logged-out token %v after the logout (revocation_sync 1s)", n.name, d.Round(time.Millisecond))
		if limit := 3 * time.Second; d > limit {
			t.Errorf("node %s took %v to enforce the logout; the bound is revocation_sync (1s) plus 2s of slack = %v", n.name, d.Round(time.Millisecond), limit)
		}
	}
	a.refreshRaw(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	for _, n := range nodes {
		n.mustPass("/other", other)
	}
	nodes[2].refresh(other)
}

// Ten refreshes of one token at the same moment, five on each of two nodes,
// within the refresh grace, all get the one successor; five rounds. Fails
// if the spend is not under a lock that holds across nodes on Redis (two
// successors), or if a retry within the grace is taken for theft.
func TestRedisParallelRefreshOneSuccessor(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	nodes := c.startAll(nodeConfig{}, "a", "b") // the default grace, 30s
	a, b := nodes[0], nodes[1]

	for round := range 5 {
		s := a.login(fmt.Sprintf("parallel-refresh-%d", round))
		body := jsonBody(t, map[string]string{"refresh_token": s.RefreshToken})
		to := make([]*node, 10)
		reqs := make([]*http.Request, len(to))
		for i := range reqs {
			to[i] = nodes[i%2]
			req, err := to[i].request(http.MethodPost, "/wx/refresh", body, "Content-Type", "application/json")
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = req
		}
		sent := time.Now()
		answers := sendAtOnce(t, to, reqs)
		// caddy-storage-redis polls for a held lock once a second, so
		// the refreshes that wait for the session's lock take about 1s.
		t.Logf("round %d: ten parallel refreshes answered in %v", round, time.Since(sent).Round(time.Millisecond))

		var successor session
		for i, r := range answers {
			got := decodeSession(t, fmt.Sprintf("round %d: parallel refresh %d on %s", round, i, to[i].name), r)
			if i == 0 {
				successor = got
			}
			if got.RefreshToken == s.RefreshToken {
				t.Fatalf("round %d: refresh %d on %s answered the spent refresh token", round, i, to[i].name)
			}
			if got.RefreshToken != successor.RefreshToken {
				t.Fatalf("round %d: refresh %d on %s got another successor than refresh 0 on %s: one live refresh token must remain", round, i, to[i].name, to[0].name)
			}
			if got.OpenID != s.OpenID {
				t.Fatalf("round %d: refresh %d on %s changed the user", round, i, to[i].name)
			}
		}
		// The successor is the session's live refresh token, on the other node.
		next := b.refresh(successor)
		a.mustPass("/next", next)
	}
}

// One fresh login code posted to three nodes at the same instant, in 30
// rounds: every node answers 200 for the same user (each with a session of
// its own), and the platform is asked once per code. Fails if the code's
// exchange is not claimed across nodes before the platform call: two nodes
// then both call code2session, and the platform refuses the second call.
func TestRedisSameCodeOnThreeNodes(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	nodes := c.startAll(nodeConfig{Block: "rate_limit off"}, "a", "b", "c")
	sameCodeAtOnce(t, c, nodes, "three-nodes", 30)
	c.mustUseRedis()
}

// sameCodeAtOnce posts one fresh code to every node at the same instant,
// rounds times, and says in which rounds the nodes did not all log the
// code's user in with one platform call.
func sameCodeAtOnce(t *testing.T, c *cluster, nodes []*node, prefix string, rounds int) {
	t.Helper()
	var failed []string // one line per failing round
	for round := range rounds {
		code := fmt.Sprintf("%s-%02d", prefix, round)
		want := fakeplatform.OpenID(testAppID, code)
		body := jsonBody(t, map[string]string{"code": code})
		reqs := make([]*http.Request, len(nodes))
		for i, n := range nodes {
			req, err := n.request(http.MethodPost, "/wx/login", body, "Content-Type", "application/json")
			if err != nil {
				t.Fatal(err)
			}
			reqs[i] = req
		}
		answers := sendAtOnce(t, nodes, reqs)

		var problems []string
		refreshTokens := map[string]bool{}
		for i, r := range answers {
			if r.Status != http.StatusOK {
				problems = append(problems, fmt.Sprintf("%s %d %s", nodes[i].name, r.Status, r.Code()))
				continue
			}
			s := decodeSession(t, "login on "+nodes[i].name, r)
			if s.OpenID != want {
				problems = append(problems, fmt.Sprintf("%s openid %s, want %s", nodes[i].name, s.OpenID, want))
			}
			refreshTokens[s.RefreshToken] = true
		}
		if ok := len(answers) - len(problems); len(refreshTokens) != ok {
			problems = append(problems, fmt.Sprintf("%d answers of 200 share %d refresh tokens", ok, len(refreshTokens)))
		}
		if calls := c.platform.CodeCalls(code); calls != 1 {
			problems = append(problems, fmt.Sprintf("%d code2session calls", calls))
		}
		if len(problems) > 0 {
			failed = append(failed, fmt.Sprintf("round %d: %s", round, strings.Join(problems, "; ")))
		}
	}
	if len(failed) > 0 {
		t.Errorf("in %d of %d rounds a code posted to %d nodes at once was not one platform call with a 200 for its user on each:\n%s",
			len(failed), rounds, len(nodes), strings.Join(failed, "\n"))
	}
}

// A node reloads its config (same storage, a new access_ttl and a header, so
// the wxauth handler is really replaced); then a token the node has cached
// is logged out on another node, and the reloaded node must refuse it
// within revocation_sync plus slack, and go on using Redis. Fails if the
// reloaded node keeps the first config's storage, which Caddy cleaned up at
// the reload (caddy-storage-redis closes its client then: "redis: client
// is closed" in the log, no revocation synced, no storage for logins).
func TestRedisReloadThenLogoutElsewhere(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	nodes := c.startAll(nodeConfig{Block: syncBlock}, "a", "b", "c")
	a, b := nodes[0], nodes[1]

	s := b.login("reload-logout")
	a.mustPass("/before", s)

	a.reloadAndWait(nodeConfig{Block: syncBlock + "\n\t\taccess_ttl 30m", Extra: "header X-Reloaded yes"})
	a.mustPass("/after-reload", s) // cached by the new handler too

	t.Run("logout elsewhere is enforced on the reloaded node", func(t *testing.T) {
		defer a.use(t)()
		defer b.use(t)()
		if r := b.logout(s.AccessToken); r.Status != http.StatusNoContent {
			t.Fatalf("logout on b: status %d, want 204: %s", r.Status, r.Body)
		}
		loggedOut := time.Now()
		d := a.waitRevoked(s.AccessToken, loggedOut, 5*time.Second)
		t.Logf("the reloaded node a refused the token %v after the logout on b (revocation_sync 1s)", d.Round(time.Millisecond))
		if limit := 3 * time.Second; d > limit {
			t.Errorf("node a took %v to enforce the logout; the bound is revocation_sync (1s) plus 2s of slack = %v", d.Round(time.Millisecond), limit)
		}
	})
	t.Run("the reloaded node still logs in and refreshes", func(t *testing.T) {
		defer a.use(t)()
		defer b.use(t)()
		s2 := a.login("after-reload")
		if s2.ExpiresIn < 1790 || s2.ExpiresIn > 1800 {
			t.Errorf("expires_in = %d after reloading with access_ttl 30m, want 1800", s2.ExpiresIn)
		}
		b.mustPass("/made-on-a", s2)
		s3 := a.refresh(s2)
		b.mustPass("/refreshed-on-a", s3)
	})
	if lines := a.logHas("client is closed"); len(lines) > 0 {
		t.Errorf("node a used a closed Redis client after the reload (%d log lines), e.g.:\n%s", len(lines), lines[0])
	}
}

// A node stops and another starts in its place on the same Redis: sessions
// made before go on (the access token passes, the refresh token refreshes,
// on the new node and the others), and a logout made before the restart is
// enforced by the new node from its start. Fails if anything of a session
// or a revocation lives only in a node's memory.
func TestRedisRestartKeepsSessions(t *testing.T) {
	t.Parallel()
	c := newRedisCluster(t)
	cfg := nodeConfig{Block: syncBlock}
	nodes := c.startAll(cfg, "a", "b", "c")
	a, b, cc := nodes[0], nodes[1], nodes[2]

	s := a.login("restart")
	gone := a.login("restart-logged-out")
	b.mustPass("/before", s)
	if r := a.logout(gone.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("logout: status %d, want 204: %s", r.Status, r.Body)
	}
	a.stop()

	a2 := c.start("a2", cfg)
	a2.mustRefuse("/logged-out", gone.AccessToken, "token_revoked")
	a2.mustPass("/after-restart", s)
	s2 := a2.refresh(s)
	b.mustPass("/refreshed", s2)
	cc.mustPass("/refreshed", s2)
	s3 := cc.refresh(s2)
	a2.mustPass("/refreshed-again", s3)
	c.mustUseRedis()
}

// Redis goes away for a while (saved first, so it comes back with its
// data): the gate keeps passing the tokens already issued, on every node;
// logins, refreshes and logouts answer 500 internal_error saying storage
// failed;
// nothing is lost: once Redis is back, logins work again and the refresh
// token that could not be spent refreshes.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	if noRedis != "" {
		t.Skip("no Redis to test against: " + noRedis)
	}
	r, err := e2etest.StartRedis(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	c := newRedisClusterOn(t, r)
	nodes := c.startAll(nodeConfig{Block: syncBlock}, "a", "b")
	a, b := nodes[0], nodes[1]
	s := a.login("outage")
	b.mustPass("/before", s)

	err = r.Restart(func() {
		for _, n := range nodes {
			n.mustPass("/during-outage", s)
		}
		for _, n := range nodes {
			login := n.postJSON("/wx/login", map[string]string{"code": "outage-new-" + n.name})
			login.Error(t, http.StatusInternalServerError, "internal_error")
			if msg := login.JSON(t)["message"].(string); !strings.Contains(msg, "storage") {
				t.Errorf("node %s: the login's message %q does not say storage failed", n.name, msg)
			}
			n.refreshRaw(s.RefreshToken).Error(t, http.StatusInternalServerError, "internal_error")
			n.logout(s.AccessToken).Error(t, http.StatusInternalServerError, "internal_error")
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The Redis client redials within a second or so of Redis coming back.
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for n.postJSON("/wx/login", map[string]string{"code": "outage-after-" + n.name}).Status != http.StatusOK {
			if time.Now().After(deadline) {
				t.Fatalf("node %s: logins still fail 10s after Redis came back", n.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	s2 := b.refresh(s)
	a.mustPass("/after", s2)
	for _, n := range nodes {
		if lines := n.logHas("could not read revoked sessions"); len(lines) == 0 {
			t.Errorf("node %s did not say it could not sync during the outage", n.name)
		}
	}
}
