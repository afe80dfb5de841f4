package caddymodule

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/userdata"
)

// maxMultipartBody caps a chooseAvatar upload: the image plus the nickname
// field and the multipart framing.
const maxMultipartBody = avatar.MaxSize + 64<<10

// requireToken is the check of every Bearer endpoint: a token is required
// even in optional mode.
func (h *Handler) requireToken(r *http.Request) (*verified, *apiError) {
	v, e := h.authenticate(r)
	if e == errNoCredentials {
		e = errLoginRequired()
	}
	return v, e
}

// bearerRequest checks a Bearer endpoint's method and token, answering
// the error itself; ok is false when it did.
func (h *Handler) bearerRequest(w http.ResponseWriter, r *http.Request, method string) (v *verified, ok bool) {
	if r.Method != method {
		writeError(w, errMethod(method))
		return nil, false
	}
	v, e := h.requireToken(r)
	if e != nil {
		writeError(w, e)
		return nil, false
	}
	return v, true
}

// reissue gives the client of v a new access token showing what changed
// in user (profile, phone), logs the change as done, and returns the token
// and its expires_in; ok is false when it answered an error instead. A
// browser gets the token as its new access cookie instead, and access is
// "": page script has no business with a token the cookie keeps from it.
func (h *Handler) reissue(w http.ResponseWriter, r *http.Request, op, done string, app platform.App, v *verified, user *store.User) (access string, expiresIn int64, ok bool) {
	access, expires, err := h.logins.Reissue(v.id, user, v.expires)
	if err != nil {
		h.writeFailure(w, r, op, app, v.id.OpenID, err)
		return "", 0, false
	}
	// What changed is not logged: a phone number never is.
	h.logger.Info(done,
		zap.String("appid", app.AppID),
		zap.String("openid", v.id.OpenID),
		zap.String("result", "ok"))
	if v.fromCookie {
		h.setAccessCookie(w, access, expires)
		return "", 0, true
	}
	return access, secondsUntil(expires, time.Now()), true
}

// meAnswer is what GET /wx/me answers: enough for a front end to decide in
// one round trip whether to ask the user for a profile (or a phone number).
type meAnswer struct {
	OpenID     string         `json:"openid"`
	UnionID    string         `json:"unionid,omitempty"`
	AppID      string         `json:"appid"`
	HasProfile bool           `json:"has_profile"`
	Profile    *store.Profile `json:"profile"`
	HasPhone   bool           `json:"has_phone"`
}

func (h *Handler) serveMe(w http.ResponseWriter, r *http.Request) {
	v, ok := h.bearerRequest(w, r, http.MethodGet)
	if !ok {
		return
	}
	// Storage, not the token, is the truth: another session of the same
	// user may have changed the profile since this token was issued.
	user, err := h.store.LoadUser(r.Context(), v.id.AppID, v.id.OpenID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Another node's record is not visible here yet: the token knows.
		user = &store.User{AppID: v.id.AppID, OpenID: v.id.OpenID, UnionID: v.id.UnionID}
		if v.id.Nickname != "" || v.id.AvatarURL != "" {
			user.Profile = &store.Profile{Nickname: v.id.Nickname, AvatarURL: v.id.AvatarURL}
		}
	case err != nil:
		h.logger.Error("me failed", zap.String("appid", v.id.AppID), zap.Error(err))
		writeError(w, errInternal())
		return
	}
	writeJSON(w, http.StatusOK, meAnswer{
		OpenID:     user.OpenID,
		UnionID:    user.UnionID,
		AppID:      user.AppID,
		HasProfile: user.Profile != nil,
		Profile:    user.Profile,
		HasPhone:   user.Phone != nil,
	})
}

// profileRequest is the JSON body of POST /wx/profile: either the plain
// profile (nickname, avatar_url) or the legacy encrypted user data.
type profileRequest struct {
	Nickname  *string `json:"nickname"`
	AvatarURL *string `json:"avatar_url"`
	encryptedFields
}

// profileAnswer is what POST /wx/profile answers: the stored profile, and
// an access token whose identity headers already show it (for a browser,
// in its cookie instead).
type profileAnswer struct {
	Profile     *store.Profile `json:"profile"`
	AccessToken string         `json:"access_token,omitempty"`
	ExpiresIn   int64          `json:"expires_in,omitempty"`
}

func (h *Handler) serveProfile(w http.ResponseWriter, r *http.Request) {
	v, ok := h.bearerRequest(w, r, http.MethodPost)
	if !ok {
		return
	}
	app, _ := h.app(v.id.AppID) // authenticate checked that it is configured

	var (
		user *store.User
		err  error
	)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "multipart/form-data":
		change, e := h.readAvatarUpload(w, r, params["boundary"])
		if e != nil {
			writeError(w, e)
			return
		}
		user, err = h.profiles.Update(r.Context(), app, v.id.OpenID, change, h.checksContent(app.AppID))
	default:
		var req profileRequest
		if e := decodeJSON(w, r, &req); e != nil {
			if e.Code == "unsupported_media_type" {
				e = errMediaType("application/json (nickname and avatar_url, or the encrypted user data) or multipart/form-data (nickname and an avatar file)")
			}
			writeError(w, e)
			return
		}
		if enc, ok := req.encrypted(); ok {
			if req.Nickname != nil || req.AvatarURL != nil {
				writeError(w, errInvalidRequest(`send either the encrypted user data or "nickname"/"avatar_url", not both`))
				return
			}
			user, err = h.profiles.UpdateFromEncrypted(r.Context(), app, v.id.OpenID, enc)
		} else {
			change := profile.Change{Nickname: req.Nickname, AvatarURL: req.AvatarURL}
			user, err = h.profiles.Update(r.Context(), app, v.id.OpenID, change, h.checksContent(app.AppID))
		}
	}
	if err != nil {
		h.writeFailure(w, r, "profile", app, v.id.OpenID, err)
		return
	}

	access, expiresIn, ok := h.reissue(w, r, "profile", "profile updated", app, v, user)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, profileAnswer{Profile: user.Profile, AccessToken: access, ExpiresIn: expiresIn})
}

// readAvatarUpload reads the chooseAvatar upload: wx.uploadFile posts the
// image as the file field "avatar", with "nickname" among its formData.
func (h *Handler) readAvatarUpload(w http.ResponseWriter, r *http.Request, boundary string) (profile.Change, *apiError) {
	var change profile.Change
	if boundary == "" {
		return change, errInvalidRequest("the multipart body has no boundary; let wx.uploadFile build the request")
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxMultipartBody), boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return change, multipartError(err)
		}
		switch part.FormName() {
		case "nickname":
			data, err := io.ReadAll(io.LimitReader(part, 4<<10+1))
			if err != nil {
				return change, multipartError(err)
			}
			if len(data) > 4<<10 {
				return change, errInvalidRequest(`"nickname" is too long`)
			}
			n := string(data)
			change.Nickname = &n
		case "avatar":
			if change.AvatarImage != nil {
				return change, errInvalidRequest(`send one "avatar" file`)
			}
			data, err := io.ReadAll(io.LimitReader(part, avatar.MaxSize+1))
			if err != nil {
				return change, multipartError(err)
			}
			if len(data) > avatar.MaxSize {
				return change, errBodyTooLarge(avatar.MaxSize)
			}
			change.AvatarImage = data // never nil: an empty file is still a file (and not an image)
		}
		// Other fields (wx.uploadFile adds none, but a client may) are skipped.
	}
	if change.AvatarImage != nil {
		change.AvatarBase = h.avatarBase(r)
	}
	return change, nil
}

func multipartError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(maxMultipartBody)
	}
	return errInvalidRequest("the multipart body is malformed; let wx.uploadFile build the request")
}

// avatarBase is the start of an uploaded avatar's URL: the avatar_base
// option, or else the scheme and host the upload came to.
func (h *Handler) avatarBase(r *http.Request) string {
	if h.AvatarBase != "" {
		return h.avatarURLBase
	}
	return h.siteURL(r) + h.prefix + "/avatar/"
}

// checksContent reports whether app's profile changes go through the
// platform's content check (the default).
func (h *Handler) checksContent(appid string) bool {
	return !h.noContentCheck[appid]
}

// writeFailure answers the errors of login, profile and phone (the
// platform's refusals, the client's mistakes, storage failures) and logs
// the one line of the failed operation: info for the client's mistakes,
// warn with the errcode for the platform's refusals, error for ours.
// openid is "" when not known yet (a login). It returns the answer's error
// code, for the metrics.
func (h *Handler) writeFailure(w http.ResponseWriter, r *http.Request, op string, app platform.App, openid string, err error) (result string) {
	var (
		input    *profile.InputError
		rejected *profile.RejectedError
		e        *apiError
		level    = zapcore.InfoLevel
		fields   []zap.Field
	)
	switch pe := platform.AsError(err); {
	case errors.As(err, &input):
		e = errInvalidRequest(input.Message)
	case errors.As(err, &rejected):
		e = errContentRejected(rejected.Field)
		fields = append(fields, zap.String("field", rejected.Field), zap.Int("label", rejected.Label))
	case errors.Is(err, profile.ErrNotImage):
		e = errNotImage()
	case errors.Is(err, profile.ErrTooLarge):
		e = errBodyTooLarge(avatar.MaxSize)
	case errors.Is(err, profile.ErrNoSessionKey):
		e = errDecryptFailed("the server holds no session key for this user")
	case errors.Is(err, userdata.ErrMalformed):
		// Still decrypt_failed, as the contract has it; the message says
		// what is malformed, since logging in again will not fix that.
		e = &apiError{Status: http.StatusBadRequest, Code: "decrypt_failed",
			Message: err.Error() + "; send encrypted_data and iv exactly as wx.getUserInfo returned them"}
	case errors.Is(err, userdata.ErrDecrypt), errors.Is(err, userdata.ErrWatermark), errors.Is(err, userdata.ErrSignature):
		e = errDecryptFailed("the encrypted user data does not decrypt or verify with this user's session key")
	case pe != nil && pe.Code == platform.RateLimited && pe.Errcode == 0:
		// Not the platform's answer but ours: the user is backing off
		// after its 45011 (see profile.Service.Backoff).
		e = platformError(pe)
		level = zapcore.DebugLevel
		h.metrics.RateLimited.WithLabelValues(op, "backoff").Inc()
	case pe != nil:
		e = platformError(pe)
		level = zapcore.WarnLevel
		fields = append(fields, zap.String("api", pe.API), zap.Int("errcode", pe.Errcode), zap.String("detail", pe.Message))
		if pe.Errmsg != "" {
			fields = append(fields, zap.String("errmsg", pe.Errmsg)) // the platform's request id is in it
		}
	case errors.Is(err, context.Canceled):
		// The client hung up while waiting (a retried post of a code
		// whose first exchange was still going): not a server fault.
		e = errInternal()
		level = zapcore.DebugLevel
		fields = append(fields, zap.String("detail", "abandoned by the client"))
	default:
		e = errInternal()
		level = zapcore.ErrorLevel
		fields = append(fields, zap.Error(err))
	}
	if ce := h.logger.Check(level, op); ce != nil {
		base := []zap.Field{zap.String("appid", app.AppID)}
		if openid != "" {
			base = append(base, zap.String("openid", openid))
		}
		ce.Write(append(append(base, zap.String("result", e.Code)), fields...)...)
	}
	writeError(w, e)
	return e.Code
}

// serveAvatar serves an uploaded avatar. Its id is its content's hash, so
// the answer never changes and may be cached for a year.
func (h *Handler) serveAvatar(w http.ResponseWriter, r *http.Request, id string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, errMethod("GET, HEAD"))
		return
	}
	data, contentType, err := h.avatars.Load(r.Context(), id)
	if errors.Is(err, avatar.ErrNotFound) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "invalid_request", Message: "no avatar has this id"})
		return
	}
	if err != nil {
		h.logger.Error("avatar failed", zap.Error(err))
		writeError(w, errInternal())
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

// phoneRequest is the body of POST /wx/phone.
type phoneRequest struct {
	Code string `json:"code"`
}

// phoneAnswer is what POST /wx/phone answers: the number, and an access
// token that carries it (X-WX-PHONE where forward_phone is set).
type phoneAnswer struct {
	Phone       *store.PhoneNumber `json:"phone"`
	AccessToken string             `json:"access_token,omitempty"`
	ExpiresIn   int64              `json:"expires_in,omitempty"`
}

func (h *Handler) servePhone(w http.ResponseWriter, r *http.Request) {
	v, ok := h.bearerRequest(w, r, http.MethodPost)
	if !ok {
		return
	}
	var req phoneRequest
	if e := decodeJSON(w, r, &req); e != nil {
		writeError(w, e)
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
	app, _ := h.app(v.id.AppID)
	if app.Kind.IsWeb() {
		writeError(w, errInvalidRequest("phone numbers come from a mini program's getPhoneNumber button; a web login cannot get one"))
		return
	}
	user, err := h.profiles.Phone(r.Context(), app, v.id.OpenID, req.Code)
	if err != nil {
		h.writeFailure(w, r, "phone", app, v.id.OpenID, err)
		return
	}
	access, expiresIn, ok := h.reissue(w, r, "phone", "phone number stored", app, v, user)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, phoneAnswer{Phone: user.Phone, AccessToken: access, ExpiresIn: expiresIn})
}
