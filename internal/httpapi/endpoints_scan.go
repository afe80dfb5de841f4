package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/scanlogin"
	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// scanEndpoints are the scan login's: the website's POST scan (a ticket
// and its code) and GET scan/wait (the long poll that ends with the
// session cookies), the code's image, and the mini program's POST
// scan/scanned, scan/confirm and scan/cancel. The flow is scanlogin's;
// here are its cookie and answers.
type scanEndpoints struct{ svc *API }

// scanRequest is the optional body of POST /wx/scan.
type scanRequest struct {
	AppID string `json:"appid"` // default: the first app with scan_login
	Next  string `json:"next"`  // where the browser goes once logged in; default "/"
}

// scanTicketRequest is the body of the mini program's posts.
type scanTicketRequest struct {
	Ticket string `json:"ticket"`
}

// scanAnswer is POST /wx/scan's answer.
type scanAnswer struct {
	Ticket    string `json:"ticket"`
	QRURL     string `json:"qr_url"`
	ExpiresIn int64  `json:"expires_in"`
}

// waitAnswer is GET /wx/scan/wait's answer.
type waitAnswer struct {
	Status scanlogin.Status `json:"status"`
	Next   string           `json:"next,omitempty"` // with confirmed
}

// begin makes a ticket for this browser. It takes no credential, but it
// binds the ticket to the browser's scan cookie: a page of another origin
// must not make tickets for the user's browser, so it is checked like a
// cookie-authenticated request.
func (e scanEndpoints) begin(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	if s.crossOrigin.Check(r) != nil {
		s.logResult(zapcore.InfoLevel, "scan", "", "", "forbidden_origin", zap.String("step", "begin"))
		writeError(w, errForbiddenOrigin())
		return
	}
	var req scanRequest
	if hasBody(r) {
		if ae := decodeJSON(w, r, &req); ae != nil {
			writeError(w, ae)
			return
		}
	}
	app, err := s.scan.App(req.AppID)
	if err != nil {
		writeError(w, failureOf(err).answer)
		return
	}
	key := ""
	if c, err := r.Cookie(scanCookie); err == nil && scanlogin.ValidToken(c.Value) {
		key = c.Value // one key per browser: its tabs' tickets all stay good
	} else if key, err = scanlogin.NewBrowserKey(); err != nil {
		s.fail(w, "scan", app.AppID, "", err)
		return
	}
	started, err := s.scan.Begin(r.Context(), app, key, weblogin.SafeNext(req.Next))
	if err != nil {
		s.fail(w, "scan", app.AppID, "", err, zap.String("step", "begin"))
		return
	}
	setCookie(w, scanCookie, key, s.scanCookiePath(), scanlogin.BrowserKeyLife)
	s.logResult(zapcore.DebugLevel, "scan", app.AppID, "", "ok", zap.String("step", "begin"))
	writeJSON(w, http.StatusOK, scanAnswer{Ticket: started.Ticket, QRURL: s.prefix + "/scan/" + started.Ticket + ".png",
		ExpiresIn: secondsUntil(started.Expires, time.Now())})
}

// get serves GET scan/wait and GET scan/<ticket>.png.
func (e scanEndpoints) get(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	switch ticket, png := strings.CutSuffix(name, ".png"); {
	case name == "wait":
		e.wait(w, r)
	case png:
		e.image(w, r, ticket)
	case isStep(name):
		writeError(w, errMethod(http.MethodPost))
	default:
		writeError(w, errNotFound())
	}
}

// post serves the mini program's POST scan/scanned, scan/confirm and
// scan/cancel.
func (e scanEndpoints) post(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	step, ok := scanlogin.ParseStep(name)
	switch {
	case ok:
		e.step(w, r, step)
	case name == "wait" || strings.HasSuffix(name, ".png"):
		writeError(w, errMethod(http.MethodGet))
	default:
		writeError(w, errNotFound())
	}
}

func isStep(name string) bool {
	_, ok := scanlogin.ParseStep(name)
	return ok
}

// image serves a ticket's mini-program code while the ticket may be
// scanned.
func (e scanEndpoints) image(w http.ResponseWriter, r *http.Request, ticket string) {
	img, err := e.svc.scan.Image(r.Context(), ticket)
	if err != nil {
		f := failureOf(err)
		e.svc.logResult(zapcore.DebugLevel, "scan", "", "", f.answer.Code, append(f.fields, zap.String("step", "image"))...)
		writeError(w, f.answer)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", img.ContentType)
	hdr.Set("Content-Length", strconv.Itoa(len(img.Data)))
	// Its URL is the ticket's: the browser may keep it as long as the
	// ticket lives, nobody else.
	hdr.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(scanlogin.TicketLifetime/time.Second)))
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(img.Data)
}

// step is the mini program's word on a ticket, with its Bearer token:
// only a mini program's own token, never a browser's cookie.
func (e scanEndpoints) step(w http.ResponseWriter, r *http.Request, step scanlogin.Step) {
	s := e.svc
	if _, bearer := bearerToken(r); !bearer {
		writeError(w, &apiError{Status: http.StatusUnauthorized, Code: "login_required",
			Message: "send the mini program's access token as Authorization: Bearer <token> (a browser's cookie does not confirm a scan login)"})
		return
	}
	v, _, ae := s.requireToken(r)
	if ae != nil {
		writeError(w, ae)
		return
	}
	var req scanTicketRequest
	if ae := decodeJSON(w, r, &req); ae != nil {
		writeError(w, ae)
		return
	}
	if req.Ticket == "" {
		writeError(w, errInvalidRequest(`"ticket" is required: post {"ticket": "<the scene the page was opened with>"}`))
		return
	}
	s.scanStep(w, step, v.Identity.AppID, v.Identity.OpenID, func() error {
		return s.scan.Step(r.Context(), req.Ticket, step, v.Identity)
	})
}

// scanStep runs one step and answers and logs it.
func (s *API) scanStep(w http.ResponseWriter, step scanlogin.Step, appid, openid string, run func() error) {
	if err := run(); err != nil {
		s.fail(w, "scan", appid, openid, err, zap.String("step", string(step)))
		return
	}
	s.logResult(zapcore.InfoLevel, "scan", appid, openid, "ok", zap.String("step", string(step)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// wait is the browser's long poll: at once when the status is not the
// one it has seen, else within scanlogin.MaxWait; a confirmed ticket sets
// the session cookies.
func (e scanEndpoints) wait(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	q := r.URL.Query()
	ticket := q.Get("ticket")
	if ticket == "" {
		writeError(w, errInvalidRequest(`"ticket" is required: GET `+s.prefix+`/scan/wait?ticket=<from POST `+s.prefix+`/scan>&seen=<the last status>`))
		return
	}
	seen := scanlogin.Pending
	if q.Has("seen") {
		var ok bool
		if seen, ok = scanlogin.ParseStatus(q.Get("seen")); !ok {
			writeError(w, errInvalidRequest(`"seen" is one of pending, scanned, confirmed, canceled, expired`))
			return
		}
	}
	key := ""
	if c, err := r.Cookie(scanCookie); err == nil {
		key = c.Value
	}
	res, err := s.scan.Wait(r.Context(), ticket, key, seen, s.shutdown)
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		return // the browser went away: nobody to answer
	case err != nil:
		s.fail(w, "scan", "", "", err, zap.String("step", "wait"))
		return
	case res.Status != scanlogin.Confirmed:
		writeJSON(w, http.StatusOK, waitAnswer{Status: res.Status})
		return
	}
	sess := res.Session
	s.countLogin(res.App.AppID, "ok")
	s.logResult(zapcore.InfoLevel, "login", res.App.AppID, sess.User.OpenID, "ok",
		zap.String("source", sess.Session.Source), zap.String("flow", "scan"))
	s.setSessionCookies(w, sess)
	writeJSON(w, http.StatusOK, waitAnswer{Status: res.Status, Next: res.Next})
}

// sandboxStep lets a developer be the phone: POST scan/sandbox/<step>
// {"ticket", "user"} logs the sandbox user in to the ticket's app (the
// user is the login code, "alice" by default) and takes the step as them.
func (e scanEndpoints) sandboxStep(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	step, ok := scanlogin.ParseStep(r.PathValue("step"))
	if !ok {
		writeError(w, errNotFound())
		return
	}
	var req struct {
		Ticket string `json:"ticket"`
		User   string `json:"user"`
	}
	if ae := decodeJSON(w, r, &req); ae != nil {
		writeError(w, ae)
		return
	}
	if req.User == "" {
		req.User = fakeplatform.DefaultWebUser
	}
	ctx := r.Context()
	app, err := s.scan.TicketApp(ctx, req.Ticket)
	if err != nil {
		s.fail(w, "scan", "", "", err, zap.String("step", string(step)))
		return
	}
	res, err := s.logins.Login(ctx, app, req.User)
	if err != nil {
		s.fail(w, "scan", app.AppID, "", err, zap.String("step", string(step)))
		return
	}
	s.scanStep(w, step, app.AppID, res.User.OpenID, func() error {
		return s.scan.Step(ctx, req.Ticket, step, login.IdentityOf(res.Session, res.User))
	})
}

// scanCookiePath is where the browser sends its scan cookie: the scan
// endpoints only.
func (s *API) scanCookiePath() string { return s.prefix + "/scan" }
