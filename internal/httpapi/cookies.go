package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/login"
)

// The cookies of the web login. All are HttpOnly (no script reads them),
// Secure, and SameSite=Lax: sent when the browser navigates here, as it
// does coming back from the platform, but not with another site's POSTs.
// SameSite does not separate sibling subdomains or other ports of one
// host, so cookie-authenticated unsafe requests are also checked for their
// origin (see API.crossOrigin).
const (
	// cookiePrefix starts the name of every cookie of the gateway: none of
	// them is ever passed to the upstream.
	cookiePrefix = "wxauth_"
	// tokenCookie holds the access token; the gate accepts it like a
	// Bearer token.
	tokenCookie = cookiePrefix + "token"
	// refreshCookie holds the refresh token, sent only to the endpoints:
	// the web login trades it for a new session without a trip to the
	// platform when the access token has expired, and logout ends its
	// session.
	refreshCookie = cookiePrefix + "refresh"
	// stateCookie binds a web login's state to the browser that started it.
	stateCookie = cookiePrefix + "state"
	// scanCookie binds scan-login tickets to the browser that asked for
	// them: a key of the browser's own (never a ticket, which is in the
	// code anyone near the screen can read), sent to the scan endpoints
	// only.
	scanCookie = cookiePrefix + "scan"
)

// refreshCookiePath is where the browser sends the refresh cookie: every
// endpoint, so that logout sees it too.
func (s *API) refreshCookiePath() string { return s.prefix + "/" }

// setSessionCookies hands a browser its session.
func (s *API) setSessionCookies(w http.ResponseWriter, res *login.Result) {
	s.setAccessCookie(w, res.AccessToken, res.AccessExpires)
	setCookie(w, refreshCookie, res.RefreshToken, s.refreshCookiePath(), time.Until(res.Session.RefreshExpires))
}

// setAccessCookie replaces the browser's access token (after a profile or
// phone change).
func (s *API) setAccessCookie(w http.ResponseWriter, access string, expires time.Time) {
	setCookie(w, tokenCookie, access, "/", time.Until(expires))
}

// clearSessionCookies ends a browser's session (logout): both cookies, each
// with its own path, whether or not this request carried them (a cookie
// scoped to another path is not sent here, yet must go).
func (s *API) clearSessionCookies(w http.ResponseWriter) {
	clearCookie(w, tokenCookie, "/")
	s.clearRefreshCookie(w)
}

// clearRefreshCookie removes the refresh cookie, and the one that gateways
// before the logout fix scoped to <prefix>/web/.
func (s *API) clearRefreshCookie(w http.ResponseWriter) {
	clearCookie(w, refreshCookie, s.refreshCookiePath())
	clearCookie(w, refreshCookie, s.prefix+"/web/")
}

func setCookie(w http.ResponseWriter, name, value, path string, life time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		MaxAge:   max(int(life/time.Second), 1),
		HttpOnly: true,
		Secure:   true,
		SameSite: http.SameSiteLaxMode,
	})
}

func clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
}

// stripGatewayCookies removes the gateway's own cookies (every wxauth_*
// name) from the request's Cookie headers and leaves every other cookie
// exactly as the client sent it, in order: the upstream's cookies are not
// the gateway's to parse, and re-serialising them would change those that
// net/http does not consider valid (JSON values, UTF-8, quotes).
func stripGatewayCookies(h http.Header) {
	lines, ok := h["Cookie"]
	if !ok {
		return
	}
	var kept []string
	changed := false
	for _, line := range lines {
		if !strings.Contains(line, cookiePrefix) {
			kept = append(kept, line)
			continue
		}
		changed = true
		var out strings.Builder
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimLeft(part, " \t"), "=")
			if strings.HasPrefix(strings.TrimSpace(name), cookiePrefix) {
				continue
			}
			if out.Len() > 0 {
				out.WriteString(";")
			} else {
				part = strings.TrimLeft(part, " \t") // the first pair starts the header value
			}
			out.WriteString(part)
		}
		if out.Len() > 0 {
			kept = append(kept, out.String())
		}
	}
	switch {
	case !changed:
	case len(kept) == 0:
		delete(h, "Cookie")
	default:
		h["Cookie"] = kept
	}
}
