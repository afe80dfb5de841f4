// Package metrics holds the caddy_wxauth_* Prometheus collectors.
//
// The collectors are process-wide and registered in each config's registry
// (Caddy makes a new registry per config load): counts carry over a config
// reload, as Prometheus expects of counters, and several wxauth handlers in
// one config share them. Labels only ever take values the operator
// configured (appids) or this code chose: never a value a client sent, so
// no request can grow the number of series.
package metrics

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace, subsystem = "caddy", "wxauth"

// Metrics are the collectors and, for the hot paths, counters whose labels
// are resolved once.
type Metrics struct {
	Logins          *prometheus.CounterVec // app, result
	Refreshes       *prometheus.CounterVec // result
	GateDecisions   *prometheus.CounterVec // result
	PlatformCalls   *prometheus.CounterVec // api, errcode
	PlatformLatency *prometheus.HistogramVec
	RateLimited     *prometheus.CounterVec // endpoint, reason
	CacheHits       prometheus.Counter
	CacheMisses     prometheus.Counter
	Swept           *prometheus.CounterVec // record

	// GateAllowed and GateAnonymous are GateDecisions' two results on the
	// gate's fast path, resolved once.
	GateAllowed   prometheus.Counter
	GateAnonymous prometheus.Counter
}

var (
	once sync.Once
	all  *Metrics
)

// Get returns the process-wide collectors.
func Get() *Metrics {
	once.Do(func() { all = build() })
	return all
}

func build() *Metrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: namespace, Subsystem: subsystem, Name: name, Help: help}
	}
	m := &Metrics{
		Logins: prometheus.NewCounterVec(opts("logins_total",
			"Logins (mini-program code posts and web callbacks) by app and result: ok, or the error code answered."), []string{"app", "result"}),
		Refreshes: prometheus.NewCounterVec(opts("refreshes_total",
			"Refresh-token exchanges by result: ok, or the error code answered."), []string{"result"}),
		GateDecisions: prometheus.NewCounterVec(opts("gate_decisions_total",
			"Requests the gate decided: ok (verified identity passed upstream), anonymous (optional mode), or the 401 error code."), []string{"result"}),
		PlatformCalls: prometheus.NewCounterVec(opts("platform_calls_total",
			"HTTP exchanges with the WeChat/QQ platform by API and errcode (0 is success; timeout, cancelled, transport, http_status or bad_answer when the platform gave none)."), []string{"api", "errcode"}),
		PlatformLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "platform_call_duration_seconds",
			Help:    "Latency of HTTP exchanges with the platform, by API.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api"}),
		RateLimited: prometheus.NewCounterVec(opts("rate_limited_total",
			"Requests answered 429 by wxauth itself, by endpoint and reason: client_ip (the per-IP limit) or backoff (the platform said 45011 recently)."), []string{"endpoint", "reason"}),
		CacheHits: prometheus.NewCounter(opts("token_cache_hits_total",
			"Access tokens found in the verified-token cache.")),
		CacheMisses: prometheus.NewCounter(opts("token_cache_misses_total",
			"Access tokens not in the cache, so verified by signature.")),
		Swept: prometheus.NewCounterVec(opts("swept_total",
			"Records the storage sweep removed on this node, by record: session, user, code (codes and web states), revocation, avatar."), []string{"record"}),
	}
	m.GateAllowed = m.GateDecisions.WithLabelValues("ok")
	m.GateAnonymous = m.GateDecisions.WithLabelValues("anonymous")
	return m
}

// Register adds the collectors to a config's registry. A second wxauth
// handler in the same config registers the same collectors again, which
// is not an error.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.Logins, m.Refreshes, m.GateDecisions, m.PlatformCalls,
		m.PlatformLatency, m.RateLimited, m.CacheHits, m.CacheMisses, m.Swept} {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if errors.As(err, &already) && already.ExistingCollector == c {
				continue
			}
			return err
		}
	}
	return nil
}

// PlatformExchange records one exchange with the platform.
func (m *Metrics) PlatformExchange(api, outcome string, d time.Duration) {
	m.PlatformCalls.WithLabelValues(api, outcome).Inc()
	m.PlatformLatency.WithLabelValues(api).Observe(d.Seconds())
}

// SweptRecords records what a storage sweep removed, by record kind.
func (m *Metrics) SweptRecords(byKind map[string]int) {
	for kind, n := range byKind {
		m.Swept.WithLabelValues(kind).Add(float64(n))
	}
}
