package integration

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// scrape reads Prometheus text from url into series → value, keeping the
// caddy_wxauth_ series.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scraping %s: %d %s", url, resp.StatusCode, b)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_wxauth_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("unparsable metric line %q", line)
		}
		series[line[:i]] = v
	}
	return series
}

// TestMetricsScrape: after a login and a refused request, the admin
// endpoint and the site's metrics directive both show the caddy_wxauth_*
// series moving: the login by app and result, the gate's decisions, the
// platform call with its errcode and latency, the token cache.
func TestMetricsScrape(t *testing.T) {
	// Metrics are served on a site of their own, as operators should: not
	// behind the gate, and not on the public site.
	port := e2etest.FreePort(t)
	g := startGateway(t, gatewayConfig{AfterSite: fmt.Sprintf("http://127.0.0.1:%d {\n\tmetrics\n}\n", port)})
	admin := adminURL + "/metrics"
	site := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	before := scrape(t, admin)

	s := g.login("metrics-amy")
	g.postJSON("/wx/login", map[string]string{"code": "invalid"}).Error(t, http.StatusBadRequest, "invalid_code")
	g.get("/", "").Error(t, http.StatusUnauthorized, "login_required")
	g.get("/", "garbage").Error(t, http.StatusUnauthorized, "token_invalid")
	for range 3 {
		if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("gate: %d %s", r.Status, r.Body)
		}
	}

	for _, url := range []string{admin, site} {
		after := scrape(t, url)
		delta := func(series string) float64 { return after[series] - before[series] }
		for series, want := range map[string]float64{
			`caddy_wxauth_logins_total{app="` + testAppID + `",result="ok"}`:           1,
			`caddy_wxauth_logins_total{app="` + testAppID + `",result="invalid_code"}`: 1,
			`caddy_wxauth_gate_decisions_total{result="ok"}`:                           3,
			`caddy_wxauth_gate_decisions_total{result="login_required"}`:               1,
			`caddy_wxauth_gate_decisions_total{result="token_invalid"}`:                1,
			`caddy_wxauth_platform_calls_total{api="code2session",errcode="0"}`:        1,
			`caddy_wxauth_platform_calls_total{api="code2session",errcode="40029"}`:    1,
			`caddy_wxauth_platform_call_duration_seconds_count{api="code2session"}`:    2,
			`caddy_wxauth_token_cache_misses_total`:                                    2, // the first use of the token, and "garbage"
			`caddy_wxauth_token_cache_hits_total`:                                      2,
		} {
			if got := delta(series); got != want {
				t.Errorf("%s: %s went up by %v, want %v", url, series, got, want)
			}
		}
	}
}
