package cluster

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Ten parallel refreshes of one token, spread over two nodes (two tabs, a
// client retrying against a load balancer), all get the one successor;
// the session lives on, on both nodes. Fails if a retry within the grace
// is taken for theft, or if two nodes hand out different successors.
func TestRefreshGraceAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	a, b := c.start("a", nodeConfig{}), c.start("b", nodeConfig{}) // the default grace, 30s
	nodes := []*node{a, b}

	s := a.login("grace")
	body := jsonBody(t, map[string]string{"refresh_token": s.RefreshToken})
	var wg sync.WaitGroup
	answers := make([]*response, 10)
	errs := make([]error, 10)
	for i := range answers {
		n := nodes[i%2]
		req, err := n.request(http.MethodPost, "/wx/refresh", body, "Content-Type", "application/json")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = n.send(req)
		}()
	}
	wg.Wait()
	var successor session
	for i, r := range answers {
		if errs[i] != nil {
			t.Fatalf("refresh %d on %s: %v", i, nodes[i%2].name, errs[i])
		}
		got := decodeSession(t, "parallel refresh on "+nodes[i%2].name, r)
		if i == 0 {
			successor = got
		}
		if got.RefreshToken != successor.RefreshToken || got.RefreshToken == s.RefreshToken {
			t.Fatalf("refresh %d on %s got another refresh token: one live refresh token must remain", i, nodes[i%2].name)
		}
		nodes[i%2].mustPass("/tab", got)
	}

	// The successor is the session's live refresh token, on either node.
	next := b.refresh(successor)
	a.mustPass("/next", next)
}

// A refresh whose answer was lost, retried on another node within the
// grace, gets the same successor; past the grace the spent token is theft
// on any node, and the whole session ends everywhere.
func TestRefreshRetryAndReplayAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cfg := nodeConfig{Block: syncBlock + "\n\t\trefresh_grace 2s"}
	a, b := c.start("a", cfg), c.start("b", cfg)

	s := a.login("retry-replay")
	lost := a.refresh(s) // the answer that never reached the client
	spent := time.Now()
	retried := decodeSession(t, "retry on b", b.refreshRaw(s.RefreshToken))
	if retried.RefreshToken != lost.RefreshToken {
		t.Fatal("the retry on another node got another successor")
	}
	b.mustPass("/retried", retried)

	time.Sleep(time.Until(spent.Add(2500 * time.Millisecond)))
	b.refreshRaw(s.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
	replayed := time.Now()
	for _, n := range []*node{a, b} {
		n.waitRevoked(retried.AccessToken, replayed, 5*time.Second)
	}
	a.refreshRaw(lost.RefreshToken).Error(t, http.StatusUnauthorized, "token_revoked")
}
