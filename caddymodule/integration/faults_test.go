package integration

import (
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	wxsession "github.com/wxauth/caddy-wxauth/internal/store"
)

// platformTimeout is the default block's platform_timeout.
const platformTimeout = time.Second

// TestPlatformFaultMatrix: whatever the platform does (slow, down, 5xx,
// garbage, -1), a login answers 502 platform_unavailable within the
// timeout's bound, the sessions already issued keep working (the gate and
// refresh never need the platform), and rounds of faults leave no
// goroutine behind.
func TestPlatformFaultMatrix(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	held := g.login("fault-keeper")

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + closed.Addr().String()
	closed.Close()
	down := strings.Replace(defaultBlock, "api_base {api_base}", "api_base "+downURL, 1)

	type fault struct {
		name  string
		code  string
		block string // a config of its own (the platform down)
	}
	faults := []fault{
		{"slow", fakeplatform.CodeSlow, ""},
		{"5xx", fakeplatform.CodeHTTP500, ""},
		{"garbage", fakeplatform.CodeGarbage, ""},
		{"busy (-1)", fakeplatform.CodeBusy, ""},
		{"down", "fault-down", down},
	}
	round := func(n int, faults []fault) {
		for _, f := range faults {
			if f.block != "" {
				g.load(gatewayConfig{Block: f.block})
			}
			start := time.Now()
			code := f.code // a scripted code, which fails every time
			if f.block != "" {
				code = fmt.Sprintf("%s-%d", f.code, n)
			}
			g.postJSON("/wx/login", map[string]string{"code": code}).
				Error(t, http.StatusBadGateway, "platform_unavailable")
			// One timeout, plus the retry pause after -1, plus slack for a
			// loaded machine: the point is that nothing waits for the
			// platform's 10 s (slow) or hangs.
			if took := time.Since(start); took > platformTimeout+3*time.Second {
				t.Errorf("%s: the login took %v to fail; platform_timeout is %v", f.name, took, platformTimeout)
			}
			// The session issued before keeps working at the gate and
			// refreshes, platform or not.
			if r := g.get("/", held.AccessToken); r.Status != http.StatusOK {
				t.Fatalf("%s: an issued session stopped working at the gate: %d %s", f.name, r.Status, r.Body)
			}
			held = g.refresh(held.RefreshToken).Session(t, f.name+": refresh during the fault")
			if f.block != "" {
				g.load(gatewayConfig{})
			}
		}
	}

	round(0, faults) // warms up what lives on: connection pools, the state
	g.client.CloseIdleConnections()
	baseline := settledGoroutines()
	// The platform down takes a config reload of its own, and a reload
	// leaves Caddy's own idle connections to the upstream behind for a
	// while: the rounds counted are of the faults a running config meets.
	for n := 1; n <= 3; n++ {
		round(n, faults[:len(faults)-1])
	}
	g.client.CloseIdleConnections()
	// Some goroutines end a while after their work: certmagic's lock-file
	// keepers notice an unlock within 5s. A leak never ends.
	if after := goroutinesDownTo(baseline+5, 12*time.Second); after > baseline+5 {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines grew from %d to %d over three rounds of faults:\n%s", baseline, after, buf[:runtime.Stack(buf, true)])
	}
	// And the platform, healthy again, logs people in.
	g.login("fault-after")
}

// goroutinesDownTo waits up to timeout for the goroutine count to fall to
// at most want, and returns the last count.
func goroutinesDownTo(want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	n := runtime.NumGoroutine()
	for n > want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// TestStorageFailureFailsOnlyThatLogin: when storage refuses writes, a
// login fails with a clear 500 and a log line, while the sessions already
// issued keep passing the gate; a refresh that cannot be saved leaves its
// session as it was (the old refresh token still works once storage is
// back); nothing is lost.
func TestStorageFailureFailsOnlyThatLogin(t *testing.T) {
	g := startGateway(t, gatewayConfig{Storage: "wxauth_test_faulty"})
	t.Cleanup(func() { storageFaults.Store("") })
	held := g.login("storage-keeper")

	storageFaults.Store(wxsession.Prefix + "/")
	r := g.postJSON("/wx/login", map[string]string{"code": "storage-new"})
	r.Error(t, http.StatusInternalServerError, "internal_error")
	if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "save the session") {
		t.Errorf("message %q does not say what failed", msg)
	}
	if r := g.get("/", held.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("an issued session stopped working while storage failed: %d %s", r.Status, r.Body)
	}
	g.refresh(held.RefreshToken).Error(t, http.StatusInternalServerError, "internal_error")
	if logs := g.Logs(); !strings.Contains(logs, errInjected.Error()) {
		t.Error("the storage failure is not in the log: an operator could not tell what went wrong")
	}

	storageFaults.Store("")
	// The refresh that could not be saved spent nothing.
	fresh := g.refresh(held.RefreshToken).Session(t, "refresh after storage came back")
	if r := g.get("/", fresh.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("the refreshed session does not work: %d %s", r.Status, r.Body)
	}
	g.login("storage-after")
}
