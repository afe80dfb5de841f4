// Package e2etest holds what the end-to-end tests (one Caddy in-process,
// and several Caddy processes) share: a free port, the upstream app that
// records what reaches it, and a read answer with the contract's error
// check. Only tests import it.
package e2etest

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a loopback port that was free a moment ago, and that
// no other test process on this machine is given until this test ends.
//
// The claim matters because Caddy listens with SO_REUSEPORT: two test
// processes (go test runs packages in parallel) that were handed the same
// port would both bind it, and the kernel would share one site's requests
// between two unrelated Caddies. A claim is a file in the temp dir,
// created exclusively and removed at cleanup; a claim left by a crashed
// run only makes that port unavailable.
func FreePort(t testing.TB) int {
	t.Helper()
	port, release, err := ClaimPort()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return port
}

// ClaimPort is FreePort for code that has no test to clean up after it
// (a TestMain starting a shared server): the claim lasts until release
// is called.
func ClaimPort() (port int, release func(), err error) {
	dir := filepath.Join(os.TempDir(), "caddy-wxauth-test-ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, nil, err
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, nil, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		claim := filepath.Join(dir, strconv.Itoa(port))
		f, err := os.OpenFile(claim, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			continue // another process holds it
		}
		f.Close()
		return port, func() { os.Remove(claim) }, nil
	}
	return 0, nil, errors.New("no free port that another test process has not claimed")
}

// Upstream is the protected app: it answers 200 with the path and the
// headers it received, and remembers every request it was sent.
type Upstream struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
	hits int
	seen []Seen
}

// Seen is one request as the upstream received it. The body is read in
// full first, because only then are its trailers known.
type Seen struct {
	Method  string
	Path    string
	Header  http.Header
	Trailer http.Header
	Body    string
}

// NewUpstream starts an Upstream, closed when the test ends.
func NewUpstream(t testing.TB) *Upstream {
	u := &Upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.hits++
		u.seen = append(u.seen, Seen{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: string(body)})
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// LastHeaders is what the upstream received on its latest request.
func (u *Upstream) LastHeaders() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last.Clone()
}

// Hits is how many requests reached the upstream.
func (u *Upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// Requests is every request the upstream received, in order.
func (u *Upstream) Requests() []Seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Seen, len(u.seen))
	copy(out, u.seen)
	return out
}

// Response is an answer, read in full.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer is not JSON (%v): %q", err, r.Body)
	}
	return m
}

// Code is the "error" field of a JSON error answer, or "".
func (r *Response) Code() string {
	var m struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &m)
	return m.Error
}

// Error checks that the answer is the contract's JSON error with this
// status and code, with a message that tells a human what to do.
func (r *Response) Error(t testing.TB, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d (%s); body %s", r.Status, status, code, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, r.Body)
	}
	m := r.JSON(t)
	if m["error"] != code {
		t.Fatalf("error = %v, want %s; body %s", m["error"], code, r.Body)
	}
	if msg, _ := m["message"].(string); len(msg) < 10 {
		t.Fatalf("message %q does not tell the user what to do", msg)
	}
}

// Session is the contract's session answer.
type Session struct {
	AccessToken  string   `json:"access_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int64    `json:"expires_in"`
	RefreshToken string   `json:"refresh_token"`
	OpenID       string   `json:"openid"`
	UnionID      string   `json:"unionid"`
	IDType       string   `json:"id_type"` // Alipay's open_id or user_id
	AppID        string   `json:"appid"`
	HasProfile   bool     `json:"has_profile"`
	Profile      *Profile `json:"profile"`
}

// Profile is the contract's profile, as the session, /me and /profile
// answers carry it.
type Profile struct {
	Nickname  string `json:"nickname"`
	AvatarURL string `json:"avatar_url"`
}

// Session checks that the answer is a 200 session answer with every
// required field, and returns it; what names the request in failures.
func (r *Response) Session(t testing.TB, what string) Session {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
	}
	var s Session
	if err := json.Unmarshal(r.Body, &s); err != nil {
		t.Fatalf("%s: answer is not a session (%v): %s", what, err, r.Body)
	}
	if s.AccessToken == "" || s.RefreshToken == "" || s.TokenType != "Bearer" || s.OpenID == "" || s.AppID == "" {
		t.Fatalf("%s: session answer incomplete: %s", what, r.Body)
	}
	return s
}
