package cluster

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// admin sends a request to the node's admin API.
func (n *node) admin(method, path string) *response {
	n.t.Helper()
	req, err := http.NewRequest(method, "http://"+n.adminAddr+path, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("node %s: admin %s %s: %v", n.name, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// An operator ends every session of a user through Caddy's admin API on
// one node; every node refuses them within revocation_sync, and no one
// else's session ends. Fails without the admin endpoint, or if it ends
// only the sessions it finds in one node's memory.
func TestAdminLogoutEverywhere(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{Block: syncBlock})
	b := c.start("b", nodeConfig{Block: syncBlock})

	phone := a.login("stolen") // one code posted twice: two sessions of one user
	tablet := b.login("stolen")
	other := b.login("not-stolen")
	for _, s := range []session{phone, tablet, other} {
		b.mustPass("/before", s) // cached on b
	}

	r := a.admin(http.MethodPost, "/wxauth/users/"+testAppID+"/"+phone.OpenID+"/logout")
	if r.Status != http.StatusOK {
		t.Fatalf("admin logout: %d %s", r.Status, r.Body)
	}
	var answer struct {
		Ended int `json:"sessions_ended"`
	}
	if err := json.Unmarshal(r.Body, &answer); err != nil || answer.Ended != 2 {
		t.Fatalf("admin logout answered %s, want 2 sessions ended", r.Body)
	}
	ended := time.Now()
	for _, n := range []*node{a, b} {
		for _, s := range []session{phone, tablet} {
			d := n.waitRevoked(s.AccessToken, ended, 5*time.Second)
			t.Logf("node %s refused a session of the user %v after the admin logout", n.name, d.Round(time.Millisecond))
		}
	}
	a.refreshRaw(phone.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	b.refreshRaw(tablet.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	a.mustPass("/other", other)
	b.refresh(other)

	if r := a.admin(http.MethodGet, "/wxauth/users/"+testAppID+"/"+phone.OpenID+"/logout"); r.Status != http.StatusMethodNotAllowed {
		t.Errorf("GET on the admin logout: %d, want 405", r.Status)
	}
	if r := a.admin(http.MethodPost, "/wxauth/users/"+testAppID+"/..%2f..%2fetc/logout"); r.Status != http.StatusBadRequest && r.Status != http.StatusNotFound {
		t.Errorf("a path trick on the admin logout: %d", r.Status)
	}
}

// A user logs out everywhere from one device: every session of theirs
// ends on every node.
func TestLogoutEverywhereAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{Block: syncBlock})
	b := c.start("b", nodeConfig{Block: syncBlock})
	mine := []session{a.login("everywhere"), b.login("everywhere"), a.login("everywhere")}
	other := a.login("someone-else")
	b.mustPass("/cached", mine[1])

	r := a.do(http.MethodPost, "/wx/logout", []byte(`{"everywhere": true}`), "Content-Type", "application/json", "Authorization", "Bearer "+mine[0].AccessToken)
	if r.Status != http.StatusNoContent {
		t.Fatalf("logout everywhere: %d %s", r.Status, r.Body)
	}
	ended := time.Now()
	for _, s := range mine {
		b.waitRevoked(s.AccessToken, ended, 5*time.Second)
		a.refreshRaw(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	}
	b.mustPass("/other", other)
}

// A revocation lasts until the session's newest access token expires, not
// for the access_ttl of the node that revokes: a 2h token logged out after
// a restart with access_ttl 3s stays refused on that node and on a node
// that starts later. Fails if the revocation's life is taken from today's
// configuration.
func TestRevocationOutlivesALowerAccessTTL(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{Block: syncBlock})
	s := a.login("long-lived")
	a.stop()

	short := nodeConfig{Block: syncBlock + "\n\t\taccess_ttl 3s"}
	b := c.start("b", short)
	b.mustPass("/after-restart", s)
	if r := b.logout(s.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.Status, r.Body)
	}
	time.Sleep(4500 * time.Millisecond) // past 3s, and past a sync
	b.mustRefuse("/later", s.AccessToken, "token_revoked")
	late := c.start("c", short)
	late.mustRefuse("/late-node", s.AccessToken, "token_revoked")
}

// Requests that come through a proxy Caddy does not trust make the node
// say so once: every client behind it then shares one rate-limit
// allowance. Fails if the warning is missing, or repeated per request.
func TestUntrustedForwardingWarnsOnce(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a := c.start("a", nodeConfig{})
	for i := range 3 {
		a.do(http.MethodPost, "/wx/login", []byte(`{"code":"xff-`+string(rune('a'+i))+`"}`),
			"Content-Type", "application/json", "X-Forwarded-For", "203.0.113.7")
	}
	logs, err := os.ReadFile(a.logPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(logs), "trusted_proxies does not cover"); n != 1 {
		t.Errorf("the untrusted X-Forwarded-For warning appeared %d times, want once", n)
	}
}
