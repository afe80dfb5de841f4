package integration

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// Each test sets a limit of its own: the limiter outlives config loads,
// so two tests with the same limit would share their counts.

// retryAfter checks a 429 rate_limited answer and returns its Retry-After.
func retryAfter(t *testing.T, r *response) time.Duration {
	t.Helper()
	r.Error(t, http.StatusTooManyRequests, "rate_limited")
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Fatalf("Retry-After = %q, want a whole number of seconds >= 1", r.Header.Get("Retry-After"))
	}
	return time.Duration(secs) * time.Second
}

// TestRateLimitPerClientIPAndRecovery: the limited endpoints share one
// allowance per client IP; beyond it they answer 429 with Retry-After and
// never reach the platform, while the gate and /wx/me are not limited;
// after Retry-After the client is served again.
func TestRateLimitPerClientIPAndRecovery(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\trate_limit 3 3s\n"})
	first := g.login("rl-ann")                               // 1
	s := g.refresh(first.RefreshToken).Session(t, "refresh") // 2
	g.postJSON("/wx/phone", map[string]string{"code": "p1"}, // 3
		bearer(s.AccessToken)...)
	calls := g.Platform.Calls("/sns/jscode2session")

	retry := retryAfter(t, g.postJSON("/wx/login", map[string]string{"code": "rl-bob"}))
	if retry > 2*time.Second {
		t.Errorf("Retry-After %v; with 3 requests per 3s one comes back within 1s", retry)
	}
	retryAfter(t, g.postJSON("/wx/refresh", map[string]string{"refresh_token": "whatever"}))
	retryAfter(t, g.postJSON("/wx/profile", map[string]string{"nickname": "Ann"}, bearer(s.AccessToken)...))
	retryAfter(t, g.do(http.MethodGet, "/wx/web/login", nil))
	if got := g.Platform.Calls("/sns/jscode2session"); got != calls {
		t.Errorf("refused logins reached the platform: %d calls, want %d", got, calls)
	}

	// Recovery after Retry-After; and the gate and /wx/me are not limited.
	fresh := g.refreshSessionAfter(retry, s)
	for range 10 {
		if r := g.get("/", fresh.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("the gate was limited: %d %s", r.Status, r.Body)
		}
		if r := g.do(http.MethodGet, "/wx/me", nil, bearer(fresh.AccessToken)...); r.Status != http.StatusOK {
			t.Fatalf("/wx/me was limited: %d %s", r.Status, r.Body)
		}
	}
}

// refreshSessionAfter waits d (a Retry-After) and shows the client is
// served again: the refresh that follows succeeds.
func (g *gateway) refreshSessionAfter(d time.Duration, s session) session {
	g.t.Helper()
	time.Sleep(d)
	return g.refresh(s.RefreshToken).Session(g.t, "refresh after Retry-After")
}

// TestRateLimitHonoursTrustedProxies: behind a trusted proxy each client
// (X-Forwarded-For) has its own allowance; from an untrusted peer the
// header is ignored, so it cannot be used to get a fresh allowance.
func TestRateLimitHonoursTrustedProxies(t *testing.T) {
	block := defaultBlock + "\t\trate_limit 2 1m\n"
	g := startGateway(t, gatewayConfig{Block: block, Global: "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"})
	xff := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := range 2 {
		g.postJSON("/wx/login", map[string]string{"code": "tp-a" + strconv.Itoa(i)}, xff("203.0.113.1")...).Session(t, "login")
	}
	retryAfter(t, g.postJSON("/wx/login", map[string]string{"code": "tp-a3"}, xff("203.0.113.1")...))
	// Another client behind the same proxy is not affected.
	g.postJSON("/wx/login", map[string]string{"code": "tp-b"}, xff("203.0.113.2")...).Session(t, "login of another client")

	// The same Caddy without trusted_proxies: the header is the client's
	// word, and every request counts against the peer, 127.0.0.1.
	g.load(gatewayConfig{Block: block})
	g.postJSON("/wx/login", map[string]string{"code": "tp-c1"}, xff("198.51.100.1")...).Session(t, "login")
	g.postJSON("/wx/login", map[string]string{"code": "tp-c2"}, xff("198.51.100.2")...).Session(t, "login")
	retryAfter(t, g.postJSON("/wx/login", map[string]string{"code": "tp-c3"}, xff("198.51.100.3")...))
}

// TestPlatformLimitBacksOff: the platform's 45011 is answered 429 with its
// Retry-After to the request it refused, and nothing else follows from a
// login's 45011: the next login from the same address (another user behind
// the same carrier NAT) and refreshes go on. A known user (profile, phone)
// backs off, but only from the calls that would reach the platform, and
// other users on the same address do not.
func TestPlatformLimitBacksOff(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\trate_limit 1000 1m\n",
		Global: "\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"})
	xff := func(ip string) []string { return []string{"X-Forwarded-For", ip} }

	earlier := g.postJSON("/wx/login", map[string]string{"code": "bo-earlier"}, xff("203.0.113.9")...).Session(t, "login")
	if retry := retryAfter(t, g.postJSON("/wx/login", map[string]string{"code": fakeplatform.CodeLimited}, xff("203.0.113.9")...)); retry != time.Minute {
		t.Errorf("Retry-After after 45011 = %v, want the platform's minute", retry)
	}
	// The same address: another user's login, and a refresh.
	calls := g.Platform.Calls("/sns/jscode2session")
	g.postJSON("/wx/login", map[string]string{"code": "bo-neighbour"}, xff("203.0.113.9")...).Session(t, "a neighbour's login after a 45011")
	if got := g.Platform.Calls("/sns/jscode2session"); got != calls+1 {
		t.Errorf("the neighbour's login made %d platform calls, want 1", got-calls)
	}
	g.postJSON("/wx/refresh", map[string]string{"refresh_token": earlier.RefreshToken}, xff("203.0.113.9")...).Session(t, "a refresh after a 45011")
	if strings.Contains(g.Logs(), "slow down for this user") {
		t.Error("a login's 45011 started a backoff")
	}

	// The phone API: the user backs off, not their address.
	s := g.postJSON("/wx/login", map[string]string{"code": "bo-user"}, xff("203.0.113.11")...).Session(t, "login")
	other := g.postJSON("/wx/login", map[string]string{"code": "bo-user2"}, xff("203.0.113.11")...).Session(t, "login")
	retryAfter(t, g.postJSON("/wx/phone", map[string]string{"code": fakeplatform.CodeLimited}, append(bearer(s.AccessToken), xff("203.0.113.11")...)...))
	retryAfter(t, g.postJSON("/wx/phone", map[string]string{"code": "bo-phone"}, append(bearer(s.AccessToken), xff("203.0.113.11")...)...))
	if n := g.Platform.PhoneCalls("bo-phone"); n != 0 {
		t.Errorf("a phone request in the backoff reached the platform %d times", n)
	}
	// A new nickname goes to the content check: refused. An avatar URL
	// alone reaches no platform: stored.
	retryAfter(t, g.postJSON("/wx/profile", map[string]string{"nickname": "Bo"}, append(bearer(s.AccessToken), xff("203.0.113.11")...)...))
	if r := g.postJSON("/wx/profile", map[string]string{"avatar_url": "https://thirdwx.qlogo.cn/bo/132"}, append(bearer(s.AccessToken), xff("203.0.113.11")...)...); r.Status != http.StatusOK {
		t.Errorf("a profile change that reaches no platform was backed off: %d %s", r.Status, r.Body)
	}
	g.postJSON("/wx/refresh", map[string]string{"refresh_token": s.RefreshToken}, xff("203.0.113.11")...).Session(t, "the backed-off user's refresh")
	r := g.postJSON("/wx/phone", map[string]string{"code": "bo-phone2"}, append(bearer(other.AccessToken), xff("203.0.113.11")...)...)
	if r.Status != http.StatusOK {
		t.Errorf("another user on the same address was backed off: %d %s", r.Status, r.Body)
	}
}

// TestPlatformConcurrencyPerApp: with platform_concurrency 1, a login
// that finds the app's one platform slot taken (by a login the platform
// is slow to answer) waits half of platform_timeout, then answers 429
// without reaching the platform.
func TestPlatformConcurrencyPerApp(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\tplatform_concurrency 1\n"})
	slow := make(chan *response, 1)
	go func() {
		slow <- g.postJSON("/wx/login", map[string]string{"code": fakeplatform.CodeSlow})
	}()
	// Wait until the slow exchange holds the slot.
	for deadline := time.Now().Add(2 * time.Second); g.Platform.CodeCalls(fakeplatform.CodeSlow) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slow login never reached the platform")
		}
		time.Sleep(10 * time.Millisecond)
	}
	retryAfter(t, g.postJSON("/wx/login", map[string]string{"code": "pc-waiting"}))
	if n := g.Platform.CodeCalls("pc-waiting"); n != 0 {
		t.Errorf("the refused login reached the platform %d times", n)
	}
	(<-slow).Error(t, http.StatusBadGateway, "platform_unavailable")
	g.login("pc-after") // the slot was given back
}
