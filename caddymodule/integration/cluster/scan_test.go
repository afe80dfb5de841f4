package cluster

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/store"
)

// scanTicket is a website's browser with its ticket.
type scanTicket struct {
	ticket, qrURL, cookie string
}

// scanStart posts /wx/scan on n as a browser with the scan cookie (""
// for a new browser).
func (n *node) scanStart(cookie string) scanTicket {
	n.t.Helper()
	var headers []string
	if cookie != "" {
		headers = []string{"Cookie", "wxauth_scan=" + cookie}
	}
	r := n.do(http.MethodPost, "/wx/scan", nil, headers...)
	if r.Status != http.StatusOK {
		n.t.Fatalf("POST /wx/scan on %s: %d %s", n.name, r.Status, r.Body)
	}
	var a struct {
		Ticket string `json:"ticket"`
		QRURL  string `json:"qr_url"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil || a.Ticket == "" {
		n.t.Fatalf("POST /wx/scan on %s answered %s", n.name, r.Body)
	}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		if c.Name == "wxauth_scan" {
			cookie = c.Value
		}
	}
	if cookie == "" {
		n.t.Fatalf("POST /wx/scan on %s set no scan cookie", n.name)
	}
	return scanTicket{ticket: a.Ticket, qrURL: a.QRURL, cookie: cookie}
}

// scanWait starts the browser's long poll on n, and hands its answer over
// when it comes.
func (n *node) scanWait(st scanTicket, seen string) <-chan *response {
	n.t.Helper()
	req, err := n.request(http.MethodGet, "/wx/scan/wait?ticket="+st.ticket+"&seen="+seen, nil, "Cookie", "wxauth_scan="+st.cookie)
	if err != nil {
		n.t.Fatal(err)
	}
	done := make(chan *response, 1)
	go func() {
		r, err := n.send(req)
		if err != nil {
			r = &response{Status: 0, Body: []byte(err.Error())}
		}
		done <- r
	}()
	return done
}

// scanStep posts the mini program's step on n.
func (n *node) scanStep(step string, st scanTicket, accessToken string) *response {
	n.t.Helper()
	return n.postJSON("/wx/scan/"+step, map[string]string{"ticket": st.ticket}, "Authorization", "Bearer "+accessToken)
}

// answered waits for a wait's answer and checks its status.
func answered(t *testing.T, what string, done <-chan *response, want string) *response {
	t.Helper()
	select {
	case r := <-done:
		var a struct {
			Status string `json:"status"`
		}
		if r.Status != http.StatusOK || json.Unmarshal(r.Body, &a) != nil || a.Status != want {
			t.Fatalf("%s: the wait answered %d %s, want status %q", what, r.Status, r.Body, want)
		}
		return r
	case <-time.After(8 * time.Second):
		t.Fatalf("%s: no answer to the wait within 8s", what)
	}
	return nil
}

// The whole scan login on two nodes: the browser asks for its ticket and
// waits on a, the code is loaded from b, the mini program scans and
// confirms on b; the wait on a follows each step, and its cookie session
// works on both nodes, once. Then a cancel and an expiry, across nodes
// too. Fails if tickets or their steps live in a node's memory, or if a
// ticket gives a session twice.
func TestScanLoginAcrossNodes(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cfg := nodeConfig{App: "scan_login pages/scan/index"}
	a, b := c.launch("a", cfg), c.launch("b", cfg)
	a.waitReady()
	b.waitReady()

	st := a.scanStart("")
	if r := b.do(http.MethodGet, st.qrURL, nil); r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("the code from b: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	a.do(http.MethodGet, st.qrURL, nil)
	if codes := c.platform.WxaCodes(); len(codes) != 1 || codes[0].Scene != st.ticket || codes[0].Page != "pages/scan/index" {
		t.Fatalf("the platform made %+v, want one code for the ticket", codes)
	}

	amy := b.login("scan-cluster-amy")
	waiting := a.scanWait(st, "pending")
	time.Sleep(300 * time.Millisecond)
	if r := b.scanStep("scanned", st, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("scanned on b: %d %s", r.Status, r.Body)
	}
	answered(t, "scanned on b", waiting, "scanned")
	waiting = a.scanWait(st, "scanned")
	time.Sleep(300 * time.Millisecond)
	if r := b.scanStep("confirm", st, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("confirm on b: %d %s", r.Status, r.Body)
	}
	r := answered(t, "confirmed on b", waiting, "confirmed")
	var token string
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == "wxauth_token" {
			token = ck.Value
		}
	}
	if token == "" {
		t.Fatalf("the confirmed wait set no session cookie: %v", r.Header)
	}
	for _, n := range []*node{a, b} {
		if r := n.do(http.MethodGet, "/orders", nil, "Cookie", "wxauth_token="+token); r.Status != http.StatusOK {
			t.Fatalf("the scan session on %s: %d %s", n.name, r.Status, r.Body)
		}
		if h := c.upstream.LastHeaders(); h.Get("X-Wx-Openid") != amy.OpenID || h.Get("X-Test-Node") != n.name {
			t.Fatalf("via %s the upstream saw %v, want amy", n.name, h)
		}
	}
	// Once, on either node.
	for _, n := range []*node{a, b} {
		r := <-n.scanWait(st, "pending")
		r.Error(t, http.StatusBadRequest, "invalid_code")
	}

	// Cancel: the browser waits on b, the phone cancels on a.
	st2 := b.scanStart(st.cookie)
	waiting = b.scanWait(st2, "pending")
	time.Sleep(300 * time.Millisecond)
	if r := a.scanStep("cancel", st2, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("cancel on a: %d %s", r.Status, r.Body)
	}
	answered(t, "canceled on a", waiting, "canceled")
	b.scanStep("confirm", st2, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")

	// Expiry: the browser waits on b; the ticket's life ends (moved into
	// the past in the shared storage, as 5 minutes would); the wait says
	// so, and a scan on a is refused.
	st3 := a.scanStart(st.cookie)
	waiting = b.scanWait(st3, "pending")
	time.Sleep(300 * time.Millisecond)
	records := store.NewStore(&certmagic.FileStorage{Path: strings.TrimPrefix(c.storage, "file_system ")})
	now := time.Now()
	if _, err := records.UpdateScanTicket(context.Background(), st3.ticket, 10*time.Minute, now, func(tk *store.ScanTicket) error {
		tk.Expires = now.Add(-time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	answered(t, "expired", waiting, "expired")
	a.scanStep("scanned", st3, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	a.do(http.MethodGet, st3.qrURL, nil).Error(t, http.StatusBadRequest, "invalid_code")
}
