package httpapi

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
)

// limited makes an endpoint count against the client IP's rate limit:
// those that log in, write sessions or reach the platform. Over the limit
// the answer is 429 with Retry-After, before the endpoint runs.
func (s *API) limited(endpoint string, next http.HandlerFunc) http.HandlerFunc {
	if s.limiter == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if s.allow(w, r, endpoint) {
			next(w, r)
		}
	}
}

// allow takes one request from the client IP's allowance, or answers 429
// and returns false.
func (s *API) allow(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	s.warnUntrustedForwarding(r)
	ok, retry := s.limiter.Allow(clientKey(r), time.Now())
	if ok {
		return true
	}
	s.metrics.RateLimited.WithLabelValues(endpoint, "client_ip").Inc()
	// Debug: a flood must not become a flood of log lines.
	s.logger.Debug("rate limited", zap.String("endpoint", endpoint), zap.String("reason", "client_ip"),
		zap.Duration("retry_after", retry))
	writeError(w, errRateLimited(retry))
	return false
}

// untrustedForwardingWarned makes the warning of warnUntrustedForwarding
// one per node (process), not one per request or per config.
var untrustedForwardingWarned atomic.Bool

// warnUntrustedForwarding tells the operator, once, that requests come
// through a proxy Caddy does not trust: Caddy then takes the proxy's
// address as the client's, and every client behind it shares one
// allowance of the rate limit.
func (s *API) warnUntrustedForwarding(r *http.Request) {
	if r.Header.Get("X-Forwarded-For") == "" || untrustedForwardingWarned.Load() {
		return
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		return
	}
	if untrustedForwardingWarned.CompareAndSwap(false, true) {
		s.logger.Warn("requests arrive with X-Forwarded-For from an address that trusted_proxies does not cover: "+
			"the rate limit counts every client behind that proxy as one; add the proxy to the server's trusted_proxies",
			zap.String("remote_addr", r.RemoteAddr))
	}
}

// clientKey is the rate-limit key of the request's client: Caddy's client
// IP, which honours the server's trusted_proxies.
func clientKey(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if ip == "" {
		ip = r.RemoteAddr
	}
	return ratelimit.ClientKey(ip)
}

func errRateLimited(retry time.Duration) *apiError {
	retry = max(retry, time.Second) // Retry-After is whole seconds; 0 would invite an instant retry
	msg := "too many requests from this address; wait " + strconv.FormatInt(ceilSeconds(retry), 10) + "s (see Retry-After) and try again"
	return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: msg, RetryAfter: retry}
}
