// Package platformtest provides a fake WeChat/QQ platform server for tests.
//
// It answers like the sandbox (a code gives sandbox.OpenID(appid, code) and
// sandbox.UnionID(code)) but behaves more like the real platform: codes are
// single-use, every exchange returns a fresh random session_key, and app
// credentials can be checked. Scripted codes simulate failures:
//
//	invalid, used, blocked, busy, limited   as in package sandbox
//	busyonce   errcode -1 the first time, then a normal login
//	quota      errcode 45009 (daily quota reached)
//	http500    HTTP 500 with an HTML body
//	garbage    HTTP 200 with the body "<html>not json"
//	badopenid  a success whose openid is "../../etc"
//	badkey     a success whose session_key is "short"
//	nounion    a success without a unionid
//	slow       answers after 10s, or gives up when the request's context ends
package platformtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/caddymodule/platform/sandbox"
)

// The scripted codes this server adds to the sandbox's.
const (
	CodeBusyOnce  = "busyonce"
	CodeQuota     = "quota"
	CodeHTTP500   = "http500"
	CodeGarbage   = "garbage"
	CodeBadOpenID = "badopenid"
	CodeBadKey    = "badkey"
	CodeNoUnion   = "nounion"
	CodeSlow      = "slow"
)

// SlowDelay is how long the "slow" code takes to answer.
const SlowDelay = 10 * time.Second

const code2SessionPath = "/sns/jscode2session"

// Server is a fake platform API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API base to configure (App.APIBase, api_base), without a
	// trailing slash.
	URL string

	srv       *httptest.Server
	sandbox   http.Handler
	closing   chan struct{} // closed by Close, so waiting handlers return
	closeOnce sync.Once

	mu          sync.Mutex
	apps        map[string]string // appid → secret; empty means accept anything
	delay       time.Duration
	calls       map[string]int     // by URL path
	codeCalls   map[string]int     // code2session calls by js_code
	attempts    map[appCode]int    // code2session calls by (appid, js_code)
	redeemed    map[appCode]bool   // codes already exchanged successfully
	sessionKeys map[appUser]string // newest session_key by (appid, openid)
	secrets     []string
}

type appCode struct{ appid, code string }
type appUser struct{ appid, openid string }

// New starts a fake platform and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		sandbox:     sandbox.NewHandler(),
		closing:     make(chan struct{}),
		apps:        map[string]string{},
		calls:       map[string]int{},
		codeCalls:   map[string]int{},
		attempts:    map[appCode]int{},
		redeemed:    map[appCode]bool{},
		sessionKeys: map[appUser]string{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server. Requests still waiting (SetDelay, "slow") return at
// once without an answer. Close may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// AddApp registers an app. Once any app is registered, code2session calls
// with an unknown appid get errcode 40013 and those with a wrong secret get
// 40125; before that, any appid and secret are accepted.
func (s *Server) AddApp(appid, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[appid] = secret
}

// SetDelay makes every later answer wait d first (or until the request's
// context ends).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Calls is how many requests reached path, e.g. "/sns/jscode2session".
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// CodeCalls is how many code2session calls carried js_code code, in any app.
func (s *Server) CodeCalls(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codeCalls[code]
}

// SecretsSeen is every "secret" query value received, in order.
func (s *Server) SecretsSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secrets)
}

// LastSessionKey is the session_key of the newest successful login of openid
// in app appid, or "" if there was none.
func (s *Server) LastSessionKey(appid, openid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionKeys[appUser{appid, openid}]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	isCode2Session := r.Method == http.MethodGet && r.URL.Path == code2SessionPath

	// Record before waiting, so tests can see calls that are still in flight.
	s.mu.Lock()
	s.calls[r.URL.Path]++
	s.secrets = append(s.secrets, query["secret"]...)
	if isCode2Session {
		code := query.Get("js_code")
		s.codeCalls[code]++
		s.attempts[appCode{query.Get("appid"), code}]++
	}
	delay := s.delay
	s.mu.Unlock()

	if !s.wait(r.Context(), delay) {
		return
	}
	if isCode2Session {
		s.code2Session(w, r, query)
		return
	}
	s.sandbox.ServeHTTP(w, r)
}

// code2Session serves /sns/jscode2session: the scripted codes, then the
// sandbox's answer made single-use and given a fresh session_key.
func (s *Server) code2Session(w http.ResponseWriter, r *http.Request, query url.Values) {
	appid, code := query.Get("appid"), query.Get("js_code")
	if errcode, errmsg := s.checkApp(appid, query.Get("secret")); errcode != 0 {
		writeFailure(w, errcode, errmsg)
		return
	}

	switch code {
	case CodeHTTP500:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "<html><body><h1>500 Internal Server Error</h1></body></html>")
		return
	case CodeGarbage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html>not json")
		return
	case CodeQuota:
		writeFailure(w, 45009, "reach max api daily quota limit")
		return
	case CodeBusyOnce:
		s.mu.Lock()
		first := s.attempts[appCode{appid, code}] == 1
		s.mu.Unlock()
		if first {
			writeFailure(w, -1, "system error")
			return
		}
	case CodeSlow:
		if !s.wait(r.Context(), SlowDelay) {
			return
		}
	}

	// The sandbox derives the identity and handles its own failure codes.
	rec := httptest.NewRecorder()
	s.sandbox.ServeHTTP(rec, r)
	var answer map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer["errcode"] != nil {
		copyResponse(w, rec)
		return
	}
	openid, _ := answer["openid"].(string)

	// Like the real platform, a code logs in once; the random session_key
	// lets tests tell one login from the next.
	key := appCode{appid, code}
	sessionKey := randomSessionKey()
	s.mu.Lock()
	if s.redeemed[key] {
		s.mu.Unlock()
		writeFailure(w, 40163, "code been used")
		return
	}
	s.redeemed[key] = true
	switch code {
	case CodeBadOpenID, CodeBadKey:
		// Garbage answers: no session to remember.
	default:
		s.sessionKeys[appUser{appid, openid}] = sessionKey
	}
	s.mu.Unlock()

	answer["session_key"] = sessionKey
	switch code {
	case CodeBadOpenID:
		answer["openid"] = "../../etc"
	case CodeBadKey:
		answer["session_key"] = "short"
	case CodeNoUnion:
		delete(answer, "unionid")
	}
	writeJSON(w, http.StatusOK, answer)
}

// checkApp returns the errcode the real platform gives for bad credentials,
// or 0 when they are fine.
func (s *Server) checkApp(appid, secret string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.apps) == 0 {
		return 0, ""
	}
	want, ok := s.apps[appid]
	switch {
	case !ok:
		return 40013, "invalid appid"
	case secret != want:
		return 40125, "invalid appsecret"
	}
	return 0, ""
}

// wait pauses d, and reports false if the request's context or the server
// ended first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

func randomSessionKey() string {
	key := make([]byte, 16)
	rand.Read(key) // never fails: crypto/rand crashes the program rather than return an error
	return base64.StdEncoding.EncodeToString(key)
}

func writeFailure(w http.ResponseWriter, errcode int, errmsg string) {
	writeJSON(w, http.StatusOK, map[string]any{"errcode": errcode, "errmsg": errmsg})
}

func writeJSON(w http.ResponseWriter, statusCode int, v any) {
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(v); err != nil {
		http.Error(w, "platformtest: cannot encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusCode)
	w.Write(body.Bytes())
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}
