package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// maxJSONBody caps JSON request bodies. The largest legitimate one is a
// legacy login with encrypted user data, a few KiB.
const maxJSONBody = 64 << 10

// maxCodeLength: platform codes are 32 characters; anything much longer is
// not a code, and would only be sent to the platform to be refused.
const maxCodeLength = 256

func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, endpoint string) {
	if limitedEndpoint(endpoint) && !h.allow(w, r, endpoint) {
		return
	}
	switch endpoint {
	case "login":
		h.serveLogin(w, r)
	case "refresh":
		h.serveRefresh(w, r)
	case "logout":
		h.serveLogout(w, r)
	case "me":
		h.serveMe(w, r)
	case "profile":
		h.serveProfile(w, r)
	case "phone":
		h.servePhone(w, r)
	default:
		if id, ok := strings.CutPrefix(endpoint, "avatar/"); ok {
			h.serveAvatar(w, r, id)
			return
		}
		if rest, ok := strings.CutPrefix(endpoint, "web/"); ok {
			h.serveWeb(w, r, rest)
			return
		}
		writeError(w, errNotFound())
	}
}

// sessionAnswer is the contract's session shape.
type sessionAnswer struct {
	AccessToken  string         `json:"access_token"`
	TokenType    string         `json:"token_type"`
	ExpiresIn    int64          `json:"expires_in"`
	RefreshToken string         `json:"refresh_token"`
	OpenID       string         `json:"openid"`
	UnionID      string         `json:"unionid,omitempty"`
	AppID        string         `json:"appid"`
	HasProfile   bool           `json:"has_profile"`
	Profile      *store.Profile `json:"profile"`
}

func newSessionAnswer(res *login.Result, now time.Time) sessionAnswer {
	return sessionAnswer{
		AccessToken:  res.AccessToken,
		TokenType:    "Bearer",
		ExpiresIn:    secondsUntil(res.AccessExpires, now),
		RefreshToken: res.RefreshToken,
		OpenID:       res.User.OpenID,
		UnionID:      res.User.UnionID,
		AppID:        res.Session.AppID,
		HasProfile:   res.User.Profile != nil,
		Profile:      res.User.Profile,
	}
}

// secondsUntil is expires_in: whole seconds, rounded down, so the token
// lives at least as long as the answer says (exp is rounded up, so a token
// issued for 1s says 1).
func secondsUntil(t, now time.Time) int64 {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return int64(d / time.Second)
}

// ceilSeconds is d in whole seconds, rounded up: what Retry-After says.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

// loginRequest is the body of POST /wx/login. The encrypted fields are the
// old two-in-one login: wx.getUserInfo's data sent along with the code.
type loginRequest struct {
	Code  string `json:"code"`
	AppID string `json:"appid"`
	encryptedFields
}

// encryptedFields are the legacy encrypted user data as a client posts
// them, on /wx/login and /wx/profile alike.
type encryptedFields struct {
	EncryptedData string `json:"encrypted_data"`
	IV            string `json:"iv"`
	RawData       string `json:"raw_data"`
	Signature     string `json:"signature"`
}

// encrypted returns the fields, and whether any was sent.
func (f encryptedFields) encrypted() (profile.Encrypted, bool) {
	enc := profile.Encrypted{Data: f.EncryptedData, IV: f.IV, RawData: f.RawData, Signature: f.Signature}
	return enc, enc != profile.Encrypted{}
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.Code == "" {
		writeError(w, errInvalidRequest(`"code" is required: post {"code": "<the code from wx.login>"}`))
		return
	}
	if len(req.Code) > maxCodeLength {
		writeError(w, errInvalidRequest(`"code" is too long to be a wx.login code`))
		return
	}
	app, e := h.appFor(req.AppID)
	if e != nil {
		writeError(w, e)
		return
	}

	var prepare login.Prepare
	if enc, ok := req.encrypted(); ok {
		// Checked before the code is spent, so a malformed request can be
		// fixed and sent again with the same code.
		if err := enc.Validate(); err != nil {
			h.countLogin(app.AppID, h.writeFailure(w, r, "login", app, "", err))
			return
		}
		prepare = func(ctx context.Context, user *store.User) (*store.User, error) {
			return h.profiles.ApplyEncrypted(ctx, app, user, enc)
		}
	}

	res, err := h.logins.LoginWith(r.Context(), app, req.Code, prepare)
	if err != nil {
		h.countLogin(app.AppID, h.writeFailure(w, r, "login", app, "", err))
		return
	}
	h.logger.Info("login",
		zap.String("appid", app.AppID),
		zap.String("openid", res.User.OpenID),
		zap.String("result", "ok"))
	h.countLogin(app.AppID, "ok")
	writeJSON(w, http.StatusOK, newSessionAnswer(res, time.Now()))
}

// countLogin counts one login attempt that named a configured app.
// Requests refused before that (a malformed body, an unknown appid) are
// not logins, and a client-chosen appid is never a label.
func (h *Handler) countLogin(appid, result string) {
	h.metrics.Logins.WithLabelValues(appid, result).Inc()
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

func (h *Handler) serveRefresh(w http.ResponseWriter, r *http.Request) {
	var req refreshRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.RefreshToken == "" {
		writeError(w, errInvalidRequest(`"refresh_token" is required: post {"refresh_token": "<from the last session answer>"}`))
		return
	}
	res, e := h.refresh(r, req.RefreshToken)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, newSessionAnswer(res, time.Now()))
}

// refresh trades a refresh token (posted, or a browser's cookie) and logs
// and counts the outcome, retries within the grace included.
func (h *Handler) refresh(r *http.Request, refreshToken string) (*login.Result, *apiError) {
	res, err := h.logins.Refresh(r.Context(), refreshToken)
	if err != nil {
		e := h.sessionError("refresh", err)
		if errors.Is(err, login.ErrRevoked) {
			h.logger.Warn("refresh", zap.String("result", e.Code),
				zap.String("detail", "the session is revoked: logged out, or a spent refresh token was presented again after its grace and the session was ended"))
		} else {
			h.logger.Info("refresh", zap.String("result", e.Code))
		}
		h.metrics.Refreshes.WithLabelValues(e.Code).Inc()
		return nil, e
	}
	result := "ok"
	if res.Retried {
		result = "retried" // within the grace: the same successor again
	}
	h.logger.Info("refresh",
		zap.String("appid", res.Session.AppID),
		zap.String("openid", res.Session.OpenID),
		zap.String("result", result))
	h.metrics.Refreshes.WithLabelValues(result).Inc()
	return res, nil
}

// logoutRequest is the optional body of POST /wx/logout.
type logoutRequest struct {
	// Everywhere ends every session of the user in this app, not only
	// this one (a stolen phone).
	Everywhere bool `json:"everywhere"`
}

// serveLogout ends the session of whatever credential the request carries:
// a Bearer token or the access cookie (expired ones too: logging out must
// not need a refresh first), or else the refresh cookie. A browser's
// cookies are cleared whatever happens, unless the request came from
// another site's page: that one ends nothing and clears nothing.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, errMethod(http.MethodPost))
		return
	}
	cred := h.logoutCredential(r)
	if cred.fromCookie && h.crossOrigin.Check(r) != nil {
		h.logger.Info("logout", zap.String("result", "forbidden_origin"))
		writeError(w, errForbiddenOrigin())
		return
	}
	h.clearSessionCookies(w)
	var req logoutRequest
	if hasBody(r) {
		if e := decodeJSON(w, r, &req); e != nil {
			writeError(w, e)
			return
		}
	}
	if cred.err != nil {
		h.logger.Info("logout", zap.String("result", cred.err.Code))
		writeError(w, cred.err)
		return
	}
	ended, err := h.endSessions(r, &cred, req.Everywhere)
	result := "ok"
	if err != nil {
		result = h.writeSessionError(w, "logout", err)
	}
	h.logger.Info("logout",
		zap.String("appid", cred.appID),
		zap.String("openid", cred.openID),
		zap.Bool("everywhere", req.Everywhere),
		zap.Int("sessions_ended", ended),
		zap.String("result", result))
	if err != nil {
		return
	}
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
func (h *Handler) logoutCredential(r *http.Request) logoutCredential {
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
		id, _, err := h.codec.VerifyIgnoringExpiry(raw, time.Now())
		if err == nil {
			if h.state.revocations.Revoked(id.SessionID) {
				cred.err = errTokenRevoked()
			}
			cred.sessionID, cred.appID, cred.openID = id.SessionID, id.AppID, id.OpenID
			return cred
		}
		if bearer || cred.refresh == "" {
			cred.err = tokenError(err)
			return cred
		}
		// A bad access cookie: the refresh cookie may still name the session.
	}
	return cred
}

// endSessions ends the credential's session, or with everywhere every
// session of its user, and says how many it ended. A session that has
// ended already ends nothing more: its tokens prove nothing now.
func (h *Handler) endSessions(r *http.Request, cred *logoutCredential, everywhere bool) (int, error) {
	ctx := r.Context()
	if cred.sessionID != "" {
		if err := h.logins.Logout(ctx, cred.sessionID); err != nil {
			return 0, err
		}
	} else {
		sess, err := h.logins.LogoutWithRefresh(ctx, cred.refresh)
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
	n, err := h.logins.LogoutUser(ctx, cred.appID, cred.openID)
	return n + 1, err
}

// hasBody reports whether the request has a body to read.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && (r.ContentLength > 0 || r.ContentLength == -1)
}

// writeSessionError answers the errors of refresh and logout, and returns
// the answer's error code.
func (h *Handler) writeSessionError(w http.ResponseWriter, op string, err error) string {
	e := h.sessionError(op, err)
	writeError(w, e)
	return e.Code
}

// sessionError maps the errors of refresh and logout onto the contract,
// logging those that are ours.
func (h *Handler) sessionError(op string, err error) *apiError {
	switch {
	case errors.Is(err, login.ErrRevoked):
		return errTokenRevoked()
	case errors.Is(err, login.ErrRefreshExpired):
		return errRefreshExpired()
	case errors.Is(err, login.ErrRefreshInvalid) && op == "logout":
		return errTokenInvalid() // the session is gone from storage
	case errors.Is(err, login.ErrRefreshInvalid):
		return errRefreshInvalid()
	default:
		h.logger.Error(op+" failed", zap.Error(err))
		return errInternal()
	}
}

// appFor picks the app a request names, or the only one configured.
func (h *Handler) appFor(appid string) (platform.App, *apiError) {
	if appid == "" {
		if h.onlyApp != nil {
			return *h.onlyApp, nil
		}
		return platform.App{}, errInvalidRequest(`"appid" is required: this gateway serves several mini programs`)
	}
	app, ok := h.apps[appid]
	if !ok {
		return platform.App{}, errInvalidRequest(`unknown "appid": it is not configured on this gateway`)
	}
	if app.Kind.IsWeb() {
		return platform.App{}, errInvalidRequest(`"appid" names a web app: web apps log in through GET ` + h.prefix + `/web/login, not with a code post`)
	}
	return app, nil
}

// decodeJSON reads a POSTed JSON object into v, answering the contract's
// errors for the wrong method, Content-Type, size or shape.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if r.Method != http.MethodPost {
		return errMethod(http.MethodPost)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errMediaType("application/json")
	}
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// One object, nothing after it.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := jsonError(err); e.Code == "body_too_large" {
				return e
			}
		}
		return errInvalidRequest("the body must be a single JSON object")
	}
	return nil
}

func jsonError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errBodyTooLarge(maxJSONBody)
	case errors.Is(err, io.EOF):
		return errInvalidRequest("the body is empty; send a JSON object")
	case errors.As(err, &typeErr):
		// encoding/json puts the Go name of an embedded struct in the path
		// ("encryptedFields.iv"); the client only knows the JSON name, and
		// every request body is a flat object.
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
		if field == "" {
			return errInvalidRequest("the body must be a JSON object")
		}
		return errInvalidRequest(`field "` + field + `" must be a ` + typeErr.Type.String())
	default:
		return errInvalidRequest("the body is not valid JSON")
	}
}
