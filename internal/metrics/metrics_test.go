package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRegisterInEveryConfigsRegistry: Caddy makes a registry per config
// load, and several handlers of one config register the same collectors:
// both must work, and counts carry over from one registry to the next.
func TestRegisterInEveryConfigsRegistry(t *testing.T) {
	m := Get()
	first := prometheus.NewPedanticRegistry()
	if err := m.Register(first); err != nil {
		t.Fatal(err)
	}
	if err := m.Register(first); err != nil {
		t.Fatalf("a second handler of the same config: %v", err)
	}
	m.Logins.WithLabelValues("wxmetricsapp0001", "ok").Inc()
	m.PlatformExchange("code2session", "0", 30*time.Millisecond)

	reloaded := prometheus.NewPedanticRegistry()
	if err := m.Register(reloaded); err != nil {
		t.Fatalf("the next config's registry: %v", err)
	}
	if n := testutil.ToFloat64(m.Logins.WithLabelValues("wxmetricsapp0001", "ok")); n != 1 {
		t.Errorf("logins = %v, want 1", n)
	}
	problems, err := testutil.GatherAndLint(reloaded)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	count, err := testutil.GatherAndCount(reloaded, "caddy_wxauth_platform_call_duration_seconds")
	if err != nil || count != 1 {
		t.Errorf("latency histogram series = %d (%v), want 1", count, err)
	}
}

// TestForeignCollectorWithOurNameIsAnError: only our own collectors may be
// registered twice; another collector with one of our names is a real
// conflict and must not pass silently.
func TestForeignCollectorWithOurNameIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "caddy_wxauth_token_cache_hits_total", Help: "not ours"}))
	err := Get().Register(reg)
	if err == nil || !strings.Contains(err.Error(), "caddy_wxauth_token_cache_hits_total") && !strings.Contains(err.Error(), "registered") {
		t.Fatalf("Register = %v, want a conflict", err)
	}
}
