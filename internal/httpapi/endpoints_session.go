package httpapi

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// maxCodeLength: platform codes are 32 characters; anything much longer is
// not a code, and would only be sent to the platform to be refused.
const maxCodeLength = 256

// sessionEndpoints start, renew and end sessions: POST login, refresh and
// logout.
type sessionEndpoints struct{ svc *API }

func (e sessionEndpoints) login(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	var req loginRequest
	if ae := decodeJSON(w, r, &req); ae != nil {
		writeError(w, ae)
		return
	}
	switch {
	case req.Code == "":
		writeError(w, errInvalidRequest(`"code" is required: post {"code": "<the code from wx.login>"}`))
		return
	case len(req.Code) > maxCodeLength:
		writeError(w, errInvalidRequest(`"code" is too long to be a wx.login code`))
		return
	}
	app, ae := s.apps.forLogin(req.AppID, s.prefix)
	if ae != nil {
		writeError(w, ae)
		return
	}
	var prepare login.Prepare
	if enc, ok := req.encrypted(); ok {
		// Checked before the code is spent, so a malformed request can be
		// fixed and sent again with the same code.
		if err := enc.Validate(); err != nil {
			s.countLogin(app.AppID, s.fail(w, "login", app.AppID, "", err))
			return
		}
		prepare = func(ctx context.Context, user *store.User) (*store.User, error) {
			return s.profiles.ApplyEncrypted(ctx, app, user, enc)
		}
	}
	res, err := s.logins.LoginWith(r.Context(), app, req.Code, prepare)
	if err != nil {
		s.countLogin(app.AppID, s.fail(w, "login", app.AppID, "", err))
		return
	}
	s.logResult(zapcore.InfoLevel, "login", app.AppID, res.User.OpenID, "ok", zap.String("source", res.Session.Source))
	s.countLogin(app.AppID, "ok")
	writeJSON(w, http.StatusOK, newSessionAnswer(res, time.Now()))
}

func (e sessionEndpoints) refresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if ae := decodeJSON(w, r, &req); ae != nil {
		writeError(w, ae)
		return
	}
	if req.RefreshToken == "" {
		writeError(w, errInvalidRequest(`"refresh_token" is required: post {"refresh_token": "<from the last session answer>"}`))
		return
	}
	res, err := e.svc.refresh(r, req.RefreshToken)
	if err != nil {
		writeError(w, failureOf(err).answer)
		return
	}
	writeJSON(w, http.StatusOK, newSessionAnswer(res, time.Now()))
}

// logout ends the session of whatever credential the request carries: a
// Bearer token or the access cookie (expired ones too: logging out must
// not need a refresh first), or else the refresh cookie. A browser's
// cookies are cleared whatever happens, unless the request came from
// another site's page: that one ends nothing and clears nothing.
func (e sessionEndpoints) logout(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	cred := s.logoutCredential(r)
	if cred.fromCookie && s.crossOrigin.Check(r) != nil {
		s.logResult(zapcore.InfoLevel, "logout", "", "", "forbidden_origin")
		writeError(w, errForbiddenOrigin())
		return
	}
	s.clearSessionCookies(w)
	var req logoutRequest
	if hasBody(r) {
		if ae := decodeJSON(w, r, &req); ae != nil {
			writeError(w, ae)
			return
		}
	}
	if cred.err != nil {
		s.logResult(zapcore.InfoLevel, "logout", "", "", cred.err.Code)
		writeError(w, cred.err)
		return
	}
	ended, err := s.endSessions(r.Context(), &cred, req.Everywhere)
	fields := []zap.Field{zap.Bool("everywhere", req.Everywhere), zap.Int("sessions_ended", ended)}
	if err != nil {
		s.fail(w, "logout", cred.appID, cred.openID, err)
		return
	}
	s.logResult(zapcore.InfoLevel, "logout", cred.appID, cred.openID, "ok", fields...)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// logoutCredential is the session a logout names.
type logoutCredential struct {
	sessionID     string // "" when only a refresh token names it
	refresh       string // the refresh cookie, when it is what names the session
	appID, openID string
	fromCookie    bool
	err           *apiError
}

// logoutCredential finds the session a logout is for: from the Bearer token,
// else from the access cookie, else from the refresh cookie. A token that
// has expired still names its session; one that is not ours names none.
func (s *API) logoutCredential(r *http.Request) logoutCredential {
	raw, bearer := bearerToken(r)
	var cred logoutCredential
	if !bearer {
		cred.fromCookie = true
		if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
			raw = c.Value
		}
		if c, err := r.Cookie(refreshCookie); err == nil && c.Value != "" {
			cred.refresh = c.Value
		}
		if raw == "" && cred.refresh == "" {
			cred.fromCookie = false
			cred.err = errLoginRequired()
			return cred
		}
	}
	if raw != "" {
		id, _, err := s.codec.VerifyIgnoringExpiry(raw, time.Now())
		if err == nil {
			if s.gate.Revocations.Revoked(id.SessionID) {
				cred.err = errTokenRevoked()
			}
			cred.sessionID, cred.appID, cred.openID = id.SessionID, id.AppID, id.OpenID
			return cred
		}
		if bearer || cred.refresh == "" {
			cred.err = errTokenInvalid()
			return cred
		}
		// A bad access cookie: the refresh cookie may still name the session.
	}
	return cred
}

// endSessions ends the credential's session, or with everywhere every
// session of its user, and says how many it ended. A session that has
// ended already ends nothing more: its tokens prove nothing now.
func (s *API) endSessions(ctx context.Context, cred *logoutCredential, everywhere bool) (int, error) {
	if cred.sessionID != "" {
		if err := s.logins.Logout(ctx, cred.sessionID); err != nil {
			return 0, err
		}
	} else {
		sess, err := s.logins.LogoutWithRefresh(ctx, cred.refresh)
		if sess != nil {
			cred.appID, cred.openID = sess.AppID, sess.OpenID
		}
		if err != nil {
			return 0, err
		}
	}
	if !everywhere {
		return 1, nil
	}
	n, err := s.logins.LogoutUser(ctx, cred.appID, cred.openID)
	return n + 1, err
}
