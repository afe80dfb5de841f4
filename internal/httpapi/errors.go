package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/handoff"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/scanlogin"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/userdata"
	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// apiError is one row of the contract's error table, with a message that
// says what happened and what to do next. Messages are written here or by
// the platform client; neither ever includes a secret or a token.
type apiError struct {
	Status     int           `json:"-"`
	Code       string        `json:"error"`
	Message    string        `json:"message"`
	RetryAfter time.Duration `json:"-"`
	Allow      string        `json:"-"` // for 405
}

func writeError(w http.ResponseWriter, e *apiError) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		hdr.Set("Retry-After", strconv.FormatInt(ceilSeconds(e.RetryAfter), 10))
	}
	if e.Allow != "" {
		hdr.Set("Allow", e.Allow)
	}
	setChallenge(hdr, e)
	w.WriteHeader(e.Status)
	encodeJSON(w, e)
}

// setChallenge sets the WWW-Authenticate of a token error, as RFC 6750 has
// it: no error for a request without a token, invalid_token for one whose
// token does not do.
func setChallenge(hdr http.Header, e *apiError) {
	switch e.Code {
	case "login_required":
		hdr.Set("WWW-Authenticate", `Bearer realm="wxauth"`)
	case "token_invalid", "token_expired", "token_revoked":
		hdr.Set("WWW-Authenticate", `Bearer realm="wxauth", error="invalid_token"`)
	}
}

// ceilSeconds is d in whole seconds, rounded up: what Retry-After says.
func ceilSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	// Answers carry tokens: no cache may keep them.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	encodeJSON(w, v)
}

// encodeJSON writes v without HTML escaping: messages such as
// "Bearer <token>" read better, and the Content-Type is JSON, not HTML.
func encodeJSON(w http.ResponseWriter, v any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func errInvalidRequest(msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Message: msg}
}

func errNotFound() *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "invalid_request", Message: "no such endpoint; see the endpoint list in the wxauth docs (docs/operating.md)"}
}

func errMethod(allow string) *apiError {
	return &apiError{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Allow: allow,
		Message: "this endpoint takes " + allow + " only"}
}

func errBodyTooLarge(limit int64) *apiError {
	return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: "the request body is over " + strconv.FormatInt(limit>>10, 10) + " KiB; send only the documented fields"}
}

func errMediaType(want string) *apiError {
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "send the body as " + want + " with a matching Content-Type header"}
}

func errLoginRequired() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "login_required",
		Message: "log in first: post a wx.login code to the login endpoint and send the access token as Authorization: Bearer <token>"}
}

func errTokenInvalid() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_invalid",
		Message: "the token is not valid here (not ours, or its session is gone); log in again"}
}

func errTokenExpired() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_expired",
		Message: "the access token has expired; trade the refresh token for a new one, or log in again"}
}

func errTokenRevoked() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_revoked",
		Message: "this session has ended (logged out, or its refresh token was used twice); log in again"}
}

func errForbiddenOrigin() *apiError {
	return &apiError{Status: http.StatusForbidden, Code: "forbidden_origin",
		Message: "this request carries the session cookie but was sent by a page of another origin; send it from this site's own pages, or have the operator add that origin to trusted_origins"}
}

func errRefreshExpired() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_expired",
		Message: "the refresh token has expired; log in again"}
}

func errStorage() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "the gateway could not read or save the session (a storage failure, logged on the server); nothing was half-saved, try again shortly"}
}

func errInternal() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "the gateway could not complete the request (the cause is logged on the server); nothing was half-saved, try again shortly"}
}

func errDecryptFailed(detail string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "decrypt_failed",
		Message: detail + "; the session key has most likely changed since the data was encrypted: call wx.login, log in again, then fetch and send the user data again"}
}

func errContentRejected(field string) *apiError {
	return &apiError{Status: http.StatusUnprocessableEntity, Code: "content_rejected",
		Message: "the platform's content check rejected the " + field + "; nothing was saved: ask the user for another one"}
}

func errNotImage() *apiError {
	return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
		Message: "the avatar must be a JPEG, PNG or WebP image (recognised by its content, not its name or type)"}
}

// platformError maps the platform client's classified error onto the
// contract's table.
func platformError(pe *platform.Error) *apiError {
	e := &apiError{Code: string(pe.Code), Message: pe.Message, RetryAfter: pe.RetryAfter}
	switch pe.Code {
	case platform.InvalidCode:
		e.Status = http.StatusBadRequest
	case platform.LoginBlocked:
		e.Status = http.StatusForbidden
	case platform.Unsupported:
		e.Status = http.StatusBadRequest
	case platform.RateLimited:
		e.Status = http.StatusTooManyRequests
		if e.RetryAfter <= 0 {
			e.RetryAfter = time.Minute
		}
	default:
		e.Code = string(platform.Unavailable)
		e.Status = http.StatusBadGateway
	}
	return e
}

// failure is how the gateway answers and logs an error of a domain
// service: the contract's row, the level of the log line, and what the
// line says besides the operation, app, user and result.
type failure struct {
	answer *apiError
	level  zapcore.Level
	fields []zap.Field
	// backoff: the gateway itself refused a user who is backing off after
	// the platform's 45011 (counted in rate_limited_total).
	backoff bool
}

// failureOf maps the errors of the domain services onto the contract's
// table: info for the client's mistakes, warn with the errcode for the
// platform's refusals, error for the gateway's own. It is the one place
// that does; it only maps.
func failureOf(err error) failure {
	var (
		input    *profile.InputError
		rejected *profile.RejectedError
	)
	pe := platform.AsError(err)
	switch {
	case errors.As(err, &input):
		return failure{answer: errInvalidRequest(input.Message)}
	case errors.As(err, &rejected):
		return failure{answer: errContentRejected(rejected.Field),
			fields: []zap.Field{zap.String("field", rejected.Field), zap.Int("label", rejected.Label)}}
	case errors.Is(err, profile.ErrNotImage):
		return failure{answer: errNotImage()}
	case errors.Is(err, profile.ErrTooLarge):
		return failure{answer: errBodyTooLarge(avatar.MaxSize)}
	case errors.Is(err, profile.ErrNoSessionKey):
		return failure{answer: errDecryptFailed("the server holds no session key for this user")}
	case errors.Is(err, userdata.ErrMalformed):
		// Still decrypt_failed, as the contract has it; the message says
		// what is malformed, since logging in again will not fix that.
		return failure{answer: &apiError{Status: http.StatusBadRequest, Code: "decrypt_failed",
			Message: err.Error() + "; send encrypted_data and iv exactly as wx.getUserInfo returned them"}}
	case errors.Is(err, userdata.ErrDecrypt), errors.Is(err, userdata.ErrWatermark), errors.Is(err, userdata.ErrSignature):
		return failure{answer: errDecryptFailed("the encrypted user data does not decrypt or verify with this user's session key")}
	case errors.Is(err, login.ErrRevoked):
		return failure{answer: errTokenRevoked()}
	case errors.Is(err, login.ErrRefreshExpired):
		return failure{answer: errRefreshExpired()}
	case errors.Is(err, login.ErrRefreshInvalid):
		return failure{answer: errTokenInvalid()}
	case pe != nil && pe.Code == platform.RateLimited && pe.Errcode == 0:
		// Not the platform's answer but ours: the user is backing off
		// after its 45011 (see profile.Service.Backoff).
		return failure{answer: platformError(pe), level: zapcore.DebugLevel, backoff: true}
	case pe != nil:
		fields := []zap.Field{zap.String("api", pe.API), zap.Int("errcode", pe.Errcode), zap.String("detail", pe.Message)}
		if pe.Errmsg != "" {
			fields = append(fields, zap.String("errmsg", pe.Errmsg)) // the platform's request id is in it
		}
		return failure{answer: platformError(pe), level: zapcore.WarnLevel, fields: fields}
	case errors.Is(err, handoff.ErrUnknownTicket):
		return failure{answer: &apiError{Status: http.StatusBadRequest, Code: "invalid_code", Message: err.Error()}}
	case webLoginError(err):
		return failure{answer: errInvalidRequest(err.Error() + "; start the web login again")}
	case errors.Is(err, scanlogin.ErrTicket):
		return failure{answer: &apiError{Status: http.StatusBadRequest, Code: "invalid_code", Message: err.Error()}}
	case errors.Is(err, scanlogin.ErrNoScanApp), errors.Is(err, scanlogin.ErrUnknownApp), errors.Is(err, scanlogin.ErrAppGone):
		return failure{answer: errInvalidRequest(err.Error())}
	case errors.Is(err, store.ErrStorage):
		return failure{answer: errStorage(), level: zapcore.ErrorLevel, fields: []zap.Field{zap.Error(err)}}
	case errors.Is(err, context.Canceled):
		// The client hung up while waiting (a retried post of a code
		// whose first exchange was still going): not a server fault.
		return failure{answer: errInternal(), level: zapcore.DebugLevel,
			fields: []zap.Field{zap.String("detail", "abandoned by the client")}}
	}
	return failure{answer: errInternal(), level: zapcore.ErrorLevel, fields: []zap.Field{zap.Error(err)}}
}

// webLoginError reports whether err is one of the web login's reasons to
// start again.
func webLoginError(err error) bool {
	for _, e := range []error{weblogin.ErrNoWebApp, weblogin.ErrUnknownApp, weblogin.ErrForeignState,
		weblogin.ErrUnknownState, weblogin.ErrAppGone, weblogin.ErrNotAuthorized} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
