package httpapi

import (
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// handoffEndpoints hand a mini-program login to a page in a <web-view>:
// POST handoff (Bearer) gives a ticket, GET web/handoff (the page's first
// load, on the page's host) trades it for the web cookie session. The
// tickets are handoff's.
type handoffEndpoints struct{ svc *API }

// ticketAnswer is what POST /wx/handoff answers.
type ticketAnswer struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int64  `json:"expires_in"`
}

func (e handoffEndpoints) issue(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	v, fromCookie, ae := s.requireToken(r)
	if ae == nil && fromCookie {
		// A browser that has the cookie session has nothing to hand off.
		ae = errInvalidRequest("the handoff endpoint takes the mini program's Bearer token (Authorization: Bearer <access_token>), not the session cookie")
	}
	if ae != nil {
		writeError(w, ae)
		return
	}
	id := v.Identity
	ticket, expires, err := s.handoff.Issue(r.Context(), id)
	if err != nil {
		s.fail(w, "handoff", id.AppID, id.OpenID, err)
		return
	}
	s.logResult(zapcore.InfoLevel, "handoff", id.AppID, id.OpenID, "ok")
	writeJSON(w, http.StatusOK, ticketAnswer{Ticket: ticket, ExpiresIn: int64(time.Until(expires) / time.Second)})
}

func (e handoffEndpoints) redeem(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	q := r.URL.Query()
	res, err := s.handoff.Redeem(r.Context(), q.Get("ticket"))
	if err != nil {
		s.fail(w, "web handoff", "", "", err)
		return
	}
	s.logResult(zapcore.InfoLevel, "web handoff", res.Session.AppID, res.User.OpenID, "ok", zap.String("source", res.Session.Source))
	// The ticket is in this URL: the page it leads to must not pass it
	// on as a referrer (it is spent, but it names a user's login).
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.setSessionCookies(w, res)
	redirect(w, weblogin.SafeNext(q.Get("next")))
}
