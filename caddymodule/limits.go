package caddymodule

import (
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/caddymodule/platform"
	"github.com/wxauth/caddy-wxauth/caddymodule/ratelimit"
)

// limitedEndpoint reports whether an endpoint counts against the client
// IP's rate limit: those that log in, write sessions or reach the
// platform. The gate, /me, avatars and logout do not.
func limitedEndpoint(endpoint string) bool {
	switch endpoint {
	case "login", "refresh", "profile", "phone", "web/login", "web/callback":
		return true
	}
	return false
}

// allow takes one request from the client IP's allowance, or answers 429
// and returns false.
func (h *Handler) allow(w http.ResponseWriter, r *http.Request, endpoint string) bool {
	if h.limiter == nil {
		return true
	}
	key := clientKey(r)
	now := time.Now()
	ok, retry := h.limiter.Allow(key, now)
	if ok {
		return true
	}
	reason := "client_ip"
	if blocked, _ := h.limiter.Blocked(key, now); blocked {
		reason = "backoff"
	}
	h.refuse(w, endpoint, reason, retry)
	return false
}

// backedOff answers 429 and returns true while a user is in a backoff
// after the platform's 45011.
func (h *Handler) backedOff(w http.ResponseWriter, endpoint, key string) bool {
	if h.limiter == nil {
		return false
	}
	blocked, retry := h.limiter.Blocked(key, time.Now())
	if blocked {
		h.refuse(w, endpoint, "backoff", retry)
	}
	return blocked
}

func (h *Handler) refuse(w http.ResponseWriter, endpoint, reason string, retry time.Duration) {
	h.metrics.RateLimited.WithLabelValues(endpoint, reason).Inc()
	// Debug: a flood must not become a flood of log lines.
	h.logger.Debug("rate limited", zap.String("endpoint", endpoint), zap.String("reason", reason),
		zap.Duration("retry_after", retry))
	writeError(w, errRateLimited(reason, retry))
}

// backOffAfter starts a backoff when the platform answered its own
// frequency limit (45011): asking again within its minute would only be
// refused again and count against the app. The platform's limit is per
// user: a logged-in user (openid known) backs off; a login, whose user is
// not known before the exchange, backs off the client's address instead.
func (h *Handler) backOffAfter(r *http.Request, appid, openid string, pe *platform.Error) {
	if h.limiter == nil || pe.Errcode != 45011 {
		return
	}
	key := clientKey(r)
	if openid != "" {
		key = userKey(appid, openid)
	}
	h.limiter.Block(key, time.Now(), pe.RetryAfter)
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

// userKey is the backoff key of a logged-in user. It cannot collide with
// a client key, which is an IP address or network.
func userKey(appid, openid string) string {
	return "user:" + appid + "/" + openid
}

func errRateLimited(reason string, retry time.Duration) *apiError {
	retry = max(retry, time.Second) // Retry-After is whole seconds; 0 would invite an instant retry
	wait := "; wait " + strconv.FormatInt(ceilSeconds(retry), 10) + "s (see Retry-After) and try again"
	msg := "too many requests from this address" + wait
	if reason == "backoff" {
		msg = "the platform asked us to slow down for this user" + wait
	}
	return &apiError{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: msg, RetryAfter: retry}
}
