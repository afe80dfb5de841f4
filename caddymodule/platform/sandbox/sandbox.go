// Package sandbox is an in-process fake of the WeChat and QQ server APIs, for
// the plugin's sandbox mode, where no network call leaves the process.
//
// Identities are derived from the login code, so a developer can log in as
// "alice" from any device and always be the same user. A few codes simulate
// platform failures:
//
//	invalid  errcode 40029 (invalid code)
//	used     errcode 40163 (code already used)
//	blocked  errcode 40226 (high-risk user, login blocked)
//	busy     errcode -1 (system busy), every time
//	limited  errcode 45011 (frequency limit)
//
// Every other non-empty code logs in. Any secret is accepted.
package sandbox

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
)

// The codes that simulate platform failures.
const (
	CodeInvalid = "invalid"
	CodeUsed    = "used"
	CodeBlocked = "blocked"
	CodeBusy    = "busy"
	CodeLimited = "limited"
)

// failureCodes maps each failure-simulating code to the answer it gets.
var failureCodes = map[string]failure{
	CodeInvalid: {40029, "invalid code"},
	CodeUsed:    {40163, "code been used"},
	CodeBlocked: {40226, "high risk user, login blocked"},
	CodeBusy:    {-1, "system error"},
	CodeLimited: {45011, "api minute-quota reach limit, mustslower retry next minute"},
}

// failure is an errcode answer, as the platform sends it.
type failure struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// derivationPrefix starts every hashed input. With the purpose label that
// follows it ("openid", "unionid", "session_key"), it keeps the three values
// independent of one another and of any other use of SHA-256 on codes.
const derivationPrefix = "wxauth-sandbox|"

// derive hashes the prefix and parts joined by "|".
func derive(parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte(derivationPrefix))
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte("|"))
		}
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// OpenID is the sandbox openid for code in app appid: 28 characters of
// [A-Za-z0-9_-] starting with "o", like a real one.
func OpenID(appid, code string) string {
	return "o" + base64.RawURLEncoding.EncodeToString(derive("openid", appid, code))[:27]
}

// UnionID is the sandbox unionid for code. It does not depend on the app, so
// one code is the same person in every app, as with an Open Platform account.
// It is 29 characters of [A-Za-z0-9_-] starting with "u".
func UnionID(code string) string {
	return "u" + base64.RawURLEncoding.EncodeToString(derive("unionid", code))[:28]
}

// SessionKey is the sandbox session_key for code in app appid: standard
// base64 of 16 bytes, like a real one.
func SessionKey(appid, code string) string {
	return base64.StdEncoding.EncodeToString(derive("session_key", appid, code)[:16])
}

// NewHandler returns a fake of the platform's HTTP API. The request's host is
// ignored, so it serves the WeChat and QQ bases alike. Like the real platform,
// errcode answers come with HTTP 200; unknown paths get a 404 with a JSON body.
func NewHandler() http.Handler {
	mux := http.NewServeMux()
	// One route per platform API; later APIs (stable_token, msg_sec_check,
	// ...) are added here.
	mux.HandleFunc("GET /sns/jscode2session", code2Session)
	mux.HandleFunc("/", notFound)
	return mux
}

// code2Session serves /sns/jscode2session.
func code2Session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appid, code := q.Get("appid"), q.Get("js_code")
	switch {
	case appid == "":
		writeJSON(w, http.StatusOK, failure{40013, "invalid appid"})
		return
	case q.Get("grant_type") != "authorization_code":
		// The real platform insists on it; catching it here catches client bugs.
		writeJSON(w, http.StatusOK, failure{40002, "invalid grant_type"})
		return
	case code == "":
		writeJSON(w, http.StatusOK, failure{40029, "invalid code"})
		return
	}
	if f, ok := failureCodes[code]; ok {
		writeJSON(w, http.StatusOK, f)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"openid":      OpenID(appid, code),
		"unionid":     UnionID(code),
		"session_key": SessionKey(appid, code),
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, failure{404, "sandbox: no such API: " + r.Method + " " + r.URL.Path})
}

// WriteJSON writes v as a JSON answer with the given status. It is exported
// for platformtest, which adds scripted answers around this handler.
func writeJSON(w http.ResponseWriter, statusCode int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only programming errors get here: every value written is plain data.
		http.Error(w, "sandbox: cannot encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusCode)
	w.Write(body)
}

// Transport returns a RoundTripper that serves every request in-process with
// NewHandler(). It never dials, whatever the request's host.
func Transport() http.RoundTripper {
	return handlerTransport{handler: NewHandler()}
}

// handlerTransport runs an http.Handler in place of a network round trip.
type handlerTransport struct {
	handler http.Handler
}

// errHandlerPanicked reports a panic in the fake, which would otherwise
// crash the whole process from the handler's goroutine.
var errHandlerPanicked = errors.New("sandbox: the fake platform handler panicked")

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil {
		// A RoundTripper must close the body, even on errors.
		defer req.Body.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The handler gets a server-side view of a copy: a RoundTripper must not
	// modify the request, and ServeMux records the matched pattern in it.
	serverReq := req.Clone(ctx)
	serverReq.RequestURI = req.URL.RequestURI()
	if serverReq.Host == "" {
		serverReq.Host = req.URL.Host
	}
	if serverReq.Body == nil {
		serverReq.Body = http.NoBody
	}
	serverReq.RemoteAddr = "sandbox:0"

	rec := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%w: %v", errHandlerPanicked, p)
			}
		}()
		t.handler.ServeHTTP(rec, serverReq)
		done <- nil
	}()

	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		// The handler sees the same context and stops on its own; its
		// recorder is simply dropped.
		return nil, context.Cause(ctx)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
