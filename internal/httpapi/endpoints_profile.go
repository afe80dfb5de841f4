package httpapi

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/gate"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// profileEndpoints are the second half of the login: who the user is
// (me), their nickname and avatar (profile, avatar), their phone number.
type profileEndpoints struct{ svc *API }

// meAnswer is what GET /wx/me answers: enough for a front end to decide in
// one round trip whether to ask the user for a profile (or a phone number).
type meAnswer struct {
	OpenID     string         `json:"openid"`
	UnionID    string         `json:"unionid,omitempty"`
	IDType     string         `json:"id_type,omitempty"` // as in the session answer
	AppID      string         `json:"appid"`
	HasProfile bool           `json:"has_profile"`
	Profile    *store.Profile `json:"profile"`
	HasPhone   bool           `json:"has_phone"`
}

func (e profileEndpoints) me(w http.ResponseWriter, r *http.Request) {
	v, _, ae := e.svc.requireToken(r)
	if ae != nil {
		writeError(w, ae)
		return
	}
	id := v.Identity
	// Storage, not the token, is the truth: another session of the same
	// user may have changed the profile since this token was issued.
	user, err := e.svc.store.LoadUser(r.Context(), id.AppID, id.OpenID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Another node's record is not visible here yet: the token knows.
		user = &store.User{AppID: id.AppID, OpenID: id.OpenID, UnionID: id.UnionID}
		if id.Nickname != "" || id.AvatarURL != "" {
			user.Profile = &store.Profile{Nickname: id.Nickname, AvatarURL: id.AvatarURL}
		}
	case err != nil:
		e.svc.fail(w, "me", id.AppID, id.OpenID, err)
		return
	}
	writeJSON(w, http.StatusOK, meAnswer{
		OpenID:     user.OpenID,
		UnionID:    user.UnionID,
		IDType:     user.IDType,
		AppID:      user.AppID,
		HasProfile: user.Profile != nil,
		Profile:    user.Profile,
		HasPhone:   user.Phone != nil,
	})
}

// profileAnswer is what POST /wx/profile answers: the stored profile, and
// an access token whose identity headers already show it (for a browser,
// in its cookie instead).
type profileAnswer struct {
	Profile     *store.Profile `json:"profile"`
	AccessToken string         `json:"access_token,omitempty"`
	ExpiresIn   int64          `json:"expires_in,omitempty"`
}

func (e profileEndpoints) profile(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	v, fromCookie, ae := e.svc.requireToken(r)
	if ae != nil {
		writeError(w, ae)
		return
	}
	app, _ := s.apps.Lookup(v.Identity.AppID) // the gate checked that it is configured
	openid := v.Identity.OpenID
	checks := s.apps.checksContent(app.AppID)

	var (
		user *store.User
		err  error
	)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		change, ae := readAvatarUpload(w, r, params["boundary"], s.avatarURLBase(r))
		if ae != nil {
			writeError(w, ae)
			return
		}
		user, err = s.profiles.Update(r.Context(), app, openid, change, checks)
	} else {
		var req profileRequest
		if ae := decodeJSON(w, r, &req); ae != nil {
			if ae.Code == "unsupported_media_type" {
				ae = errMediaType("application/json (nickname and avatar_url, or the encrypted user data) or multipart/form-data (nickname and an avatar file)")
			}
			writeError(w, ae)
			return
		}
		if enc, ok := req.encrypted(); ok {
			if req.Nickname != nil || req.AvatarURL != nil {
				writeError(w, errInvalidRequest(`send either the encrypted user data or "nickname"/"avatar_url", not both`))
				return
			}
			user, err = s.profiles.UpdateFromEncrypted(r.Context(), app, openid, enc)
		} else {
			change := profile.Change{Nickname: req.Nickname, AvatarURL: req.AvatarURL}
			user, err = s.profiles.Update(r.Context(), app, openid, change, checks)
		}
	}
	if err != nil {
		s.fail(w, "profile", app.AppID, openid, err)
		return
	}
	access, expiresIn, ok := e.reissue(w, "profile", "profile updated", app, v, fromCookie, user)
	if ok {
		writeJSON(w, http.StatusOK, profileAnswer{Profile: user.Profile, AccessToken: access, ExpiresIn: expiresIn})
	}
}

// avatar serves an uploaded avatar. Its id is its content's hash, so the
// answer never changes and may be cached for a year.
func (e profileEndpoints) avatar(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, contentType, err := e.svc.avatars.Load(r.Context(), id)
	if errors.Is(err, avatar.ErrNotFound) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "invalid_request", Message: "no avatar has this id"})
		return
	}
	if err != nil {
		e.svc.fail(w, "avatar", "", "", err)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", contentType)
	hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	hdr.Set("ETag", `"`+id+`"`)
	hdr.Set("X-Content-Type-Options", "nosniff")
	// Should a browser ever be talked into rendering it as a document, it
	// may run nothing.
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// phoneAnswer is what POST /wx/phone answers: the number, and an access
// token that carries it (X-WX-PHONE where forward_phone is set).
type phoneAnswer struct {
	Phone       *store.PhoneNumber `json:"phone"`
	AccessToken string             `json:"access_token,omitempty"`
	ExpiresIn   int64              `json:"expires_in,omitempty"`
}

func (e profileEndpoints) phone(w http.ResponseWriter, r *http.Request) {
	s := e.svc
	v, fromCookie, ae := e.svc.requireToken(r)
	if ae != nil {
		writeError(w, ae)
		return
	}
	var req phoneRequest
	if ae := decodeJSON(w, r, &req); ae != nil {
		writeError(w, ae)
		return
	}
	switch {
	case req.Code == "":
		writeError(w, errInvalidRequest(`"code" is required: post {"code": "<e.detail.code from the getPhoneNumber button>"}`))
		return
	case len(req.Code) > maxCodeLength:
		writeError(w, errInvalidRequest(`"code" is too long to be a getPhoneNumber code`))
		return
	}
	app, _ := s.apps.Lookup(v.Identity.AppID)
	if app.Kind.IsWeb() {
		writeError(w, errInvalidRequest("phone numbers come from a mini program's getPhoneNumber button; a web login cannot get one"))
		return
	}
	user, err := s.profiles.Phone(r.Context(), app, v.Identity.OpenID, req.Code)
	if err != nil {
		s.fail(w, "phone", app.AppID, v.Identity.OpenID, err)
		return
	}
	access, expiresIn, ok := e.reissue(w, "phone", "phone number stored", app, v, fromCookie, user)
	if ok {
		writeJSON(w, http.StatusOK, phoneAnswer{Phone: user.Phone, AccessToken: access, ExpiresIn: expiresIn})
	}
}

// reissue gives the client of v a new access token showing what changed
// in user (profile, phone), logs the change as done, and returns the token
// and its expires_in; ok is false when it answered an error instead. A
// browser gets the token as its new access cookie instead, and access is
// "": page script has no business with a token the cookie keeps from it.
func (e profileEndpoints) reissue(w http.ResponseWriter, op, done string, app platform.App, v *gate.Verified, fromCookie bool, user *store.User) (access string, expiresIn int64, ok bool) {
	s := e.svc
	access, expires, err := s.logins.Reissue(v.Identity, user, v.Expires)
	if err != nil {
		s.fail(w, op, app.AppID, v.Identity.OpenID, err)
		return "", 0, false
	}
	// What changed is not logged: a phone number never is.
	s.logResult(zapcore.InfoLevel, done, app.AppID, v.Identity.OpenID, "ok")
	if fromCookie {
		s.setAccessCookie(w, access, expires)
		return "", 0, true
	}
	return access, secondsUntil(expires, time.Now()), true
}
