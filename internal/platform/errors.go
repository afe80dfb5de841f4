package platform

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrorCode classifies a platform failure. The values are the error codes of
// the plugin's answers (see the errors table of the contract), so a caller can
// pass them through.
type ErrorCode string

const (
	// InvalidCode: the code is invalid, expired or already used (40029, 40163).
	InvalidCode ErrorCode = "invalid_code"
	// LoginBlocked: the platform refuses this user as high-risk (40226).
	LoginBlocked ErrorCode = "login_blocked"
	// RateLimited: the platform's frequency limit was hit (45011); see RetryAfter.
	RateLimited ErrorCode = "rate_limited"
	// Unsupported: the request cannot succeed as sent, whatever the platform
	// does: the app's platform has no such API (QQ mini programs have no
	// phone-number API) or the input is unusable (an empty image). It is the
	// contract's invalid_request (HTTP 400); nothing was sent to the platform.
	Unsupported ErrorCode = "invalid_request"
	// Unavailable: everything else. The platform is busy, slow, unreachable,
	// answers garbage, refuses the app's credentials or quota, or answers an
	// errcode this package does not know.
	Unavailable ErrorCode = "platform_unavailable"
)

// rateLimitRetryAfter is how long to wait after 45011; the platform's limit is
// counted per minute.
const rateLimitRetryAfter = 60 * time.Second

// maxErrmsgLen bounds the platform's errmsg kept in an Error, so a hostile or
// broken server cannot bloat logs.
const maxErrmsgLen = 200

// Error is the only error type the Client returns.
type Error struct {
	Code       ErrorCode
	API        string        // the platform API that failed, e.g. "code2session"
	Errcode    int           // the platform's errcode; 0 when there was none (transport failure, garbage)
	RetryAfter time.Duration // set for RateLimited
	// Message is safe to show to the client: what happened and what to do next.
	Message string
	// Errmsg is the platform's own errmsg, truncated and with the app secret
	// removed. It carries the platform's request id ("rid: ..."), which its
	// support asks for, so it belongs in logs rather than in answers.
	Errmsg string

	// tokenRefused: the API refused the access_token the call carried
	// (not the call itself), so a Service sends it once more with a
	// fresh token.
	tokenRefused bool
}

// Error describes the failure for logs. It never contains the app secret, an
// access_token, a session_key, a phone number or a request URL.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("platform ")
	b.WriteString(e.API)
	b.WriteString(": ")
	if e.Errcode != 0 {
		fmt.Fprintf(&b, "errcode %d: ", e.Errcode)
	}
	b.WriteString(e.Message)
	if e.Errmsg != "" {
		fmt.Fprintf(&b, " (platform said %q)", e.Errmsg)
	}
	return b.String()
}

// AsError returns the *Error in err's chain, or nil if there is none.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}

// failure is what one errcode means for one API.
type failure struct {
	code    ErrorCode
	message string
}

// commonFailures are errcodes that mean the same for every API. Each API adds
// its own (for instance what 40029 means) through request.failures.
var commonFailures = map[int]failure{
	-1: {Unavailable, "the platform is busy and stayed busy on a retry; try again shortly"},
	40013: {Unavailable, "the platform rejected the app's credentials (errcode 40013); " +
		"the operator should check the appid and secret"},
	40125: {Unavailable, "the platform rejected the app's credentials (errcode 40125); " +
		"the operator should check the appid and secret"},
	45009: {Unavailable, "the app used up its daily quota for this platform API; " +
		"try again tomorrow (the operator can reset the quota in the platform's console)"},
	45011: {RateLimited, "the platform is limiting how often this call can be made; wait a minute and try again"},
	// A Service refreshes the access_token and retries once on these; a
	// caller only sees them when the fresh token was refused too.
	40001: {Unavailable, tokenRefusedMessage(40001)},
	40014: {Unavailable, tokenRefusedMessage(40014)},
	42001: {Unavailable, tokenRefusedMessage(42001)},
}

func tokenRefusedMessage(errcode int) string {
	return fmt.Sprintf("the platform refused the app's access_token (errcode %d) even after it was refreshed; "+
		"try again later (the operator should check that nothing else force-refreshes this app's token)", errcode)
}

// errcodeError builds the Error for a non-zero errcode. secrets (the app
// secret, an access_token) are removed from errmsg.
func errcodeError(api string, errcode int, errmsg string, own map[int]failure, secrets ...string) *Error {
	f, ok := own[errcode]
	if !ok {
		f, ok = commonFailures[errcode]
	}
	if !ok {
		f = unknownErrcode(errcode)
	}
	return newError(api, errcode, errmsg, f, secrets...)
}

// tableError is errcodeError for the platforms whose numbers mean
// something else than WeChat's (Douyin, Baidu): only the API's own table.
func tableError(api string, errcode int, errmsg string, own map[int]failure, secrets ...string) *Error {
	f, ok := own[errcode]
	if !ok {
		f = unknownErrcode(errcode)
	}
	return newError(api, errcode, errmsg, f, secrets...)
}

func unknownErrcode(errcode int) failure {
	return failure{Unavailable, fmt.Sprintf("the platform answered with error %d, which wxauth does not know; try again later", errcode)}
}

// newError is the Error of failure f for the platform's error number
// errcode and text errmsg, from which secrets are removed.
func newError(api string, errcode int, errmsg string, f failure, secrets ...string) *Error {
	e := &Error{Code: f.code, API: api, Errcode: errcode, Message: f.message, Errmsg: scrubErrmsg(errmsg, secrets...)}
	if f.code == RateLimited {
		e.RetryAfter = rateLimitRetryAfter
	}
	return e
}

// unavailable builds an Unavailable error without an errcode.
func unavailable(api, message string) *Error {
	return &Error{Code: Unavailable, API: api, Message: message}
}

// scrubErrmsg makes the platform's errmsg fit for logs: the secrets (the app
// secret, an access_token) are removed, raw or URL-escaped, in case a proxy or
// fake echoes the request; control characters go, and the length is bounded.
func scrubErrmsg(errmsg string, secrets ...string) string {
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		errmsg = strings.ReplaceAll(errmsg, secret, "[redacted]")
		if escaped := url.QueryEscape(secret); escaped != secret {
			errmsg = strings.ReplaceAll(errmsg, escaped, "[redacted]")
		}
	}
	errmsg = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(errmsg, "\uFFFD"))
	if len(errmsg) > maxErrmsgLen {
		cut := maxErrmsgLen
		for cut > 0 && !utf8.RuneStart(errmsg[cut]) {
			cut--
		}
		errmsg = errmsg[:cut] + "..."
	}
	return strings.TrimSpace(errmsg)
}
