package caddymodule

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/platform"
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
	switch e.Code {
	case "login_required":
		hdr.Set("WWW-Authenticate", `Bearer realm="wxauth"`)
	case "token_invalid", "token_expired", "token_revoked":
		hdr.Set("WWW-Authenticate", `Bearer realm="wxauth", error="invalid_token"`)
	}
	w.WriteHeader(e.Status)
	encodeJSON(w, e)
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
	return &apiError{Status: http.StatusNotFound, Code: "invalid_request", Message: "no such endpoint; see the endpoint list in the wxauth README"}
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
		Message: "the access token is not valid here; log in again"}
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

func errRefreshInvalid() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_invalid",
		Message: "the refresh token is not valid here; log in again"}
}

func errRefreshExpired() *apiError {
	return &apiError{Status: http.StatusUnauthorized, Code: "token_expired",
		Message: "the refresh token has expired; log in again"}
}

func errInternal() *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error",
		Message: "the gateway could not read or save the session (a storage failure, logged on the server); try again shortly"}
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
