// Package integration starts real Caddy servers with the wxauth module in
// front of a real upstream, and talks real HTTP to them; the platform is a
// fake on loopback (platformtest). Like Caddy's own caddytest/integration,
// these tests share one in-process Caddy, loaded with a new config per test,
// so they do not run in parallel.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/wxauth/caddy-wxauth"
	"github.com/wxauth/caddy-wxauth/caddymodule/platform/platformtest"
)

// Secrets the tests configure, so they can look for them where they must
// never be.
const (
	testAppID      = "wxtestapp0000001"
	testSecret     = "S3CRET-appsecret-never-shown-0001"
	testSigningKey = "S3CRET-signing-key-never-shown-0123456789"
)

// gateway is one running configuration: Caddy with wxauth, the fake
// platform and the upstream it protects.
type gateway struct {
	t        *testing.T
	URL      string // http://127.0.0.1:port
	Platform *platformtest.Server
	Upstream *upstream
	LogPath  string
	DataDir  string
	client   *http.Client
}

// gatewayConfig fills the site's wxauth block; %s placeholders are
// {api_base} (the fake platform) and {upstream}.
type gatewayConfig struct {
	// Block is the inside of the wxauth block. "{api_base}" is replaced with
	// the fake platform's URL.
	Block string
	// Extra site directives after wxauth, before reverse_proxy.
	Extra string
	// DataDir reuses a storage folder (for restart tests); "" makes one.
	DataDir string
}

// The secret and signing key are given as {env.*} placeholders, as the
// README recommends: Caddy itself logs its config at debug level and serves
// it on the admin API, so a literal secret in a Caddyfile would show there.
const (
	secretEnv     = "WXAUTH_TEST_SECRET"
	signingKeyEnv = "WXAUTH_TEST_SIGNING_KEY"
	hs256Line     = "\t\tsigning_key {env." + signingKeyEnv + "}\n"
)

func TestMain(m *testing.M) {
	os.Setenv(secretEnv, testSecret)
	os.Setenv(signingKeyEnv, testSigningKey)
	os.Exit(m.Run())
}

const defaultBlock = `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
		}
		api_base {api_base}
		platform_timeout 1s
`

// startGateway loads cfg into the test Caddy and waits until it serves.
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	g := &gateway{
		t:        t,
		Platform: platformtest.New(t),
		Upstream: newUpstream(t),
		DataDir:  cfg.DataDir,
		client:   &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	if g.DataDir == "" {
		g.DataDir = t.TempDir()
	}
	g.LogPath = filepath.Join(t.TempDir(), "caddy.log")
	g.URL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	g.load(cfg)
	return g
}

// load (re)loads the test Caddy with cfg, keeping the gateway's port,
// storage, fake platform and upstream: a config reload, as `caddy reload`
// does it, through the admin API.
func (g *gateway) load(cfg gatewayConfig) {
	t := g.t
	t.Helper()
	block := cfg.Block
	if block == "" {
		block = defaultBlock
	}
	block = strings.ReplaceAll(block, "{api_base}", g.Platform.URL)
	caddyfile := fmt.Sprintf(`{
	admin localhost:2999
	persist_config off
	storage file_system %s
	log {
		output file %s
		level DEBUG
	}
}

%s {
	wxauth {
%s
	}
%s
	reverse_proxy %s
}
`, g.DataDir, g.LogPath, g.URL, block, cfg.Extra, strings.TrimPrefix(g.Upstream.URL, "http://"))

	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is the protected app: it answers with the headers it received,
// and remembers the last request's headers.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	last http.Header
	hits int
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last = r.Header.Clone()
		u.hits++
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.Path, "headers": r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// LastHeaders is what the upstream received on its latest request.
func (u *upstream) LastHeaders() http.Header {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last.Clone()
}

func (u *upstream) Hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits
}

// response is a read answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("answer is not JSON (%v): %q", err, r.Body)
	}
	return m
}

// Error checks that the answer is the contract's JSON error with this
// status and code, and that the message is there for humans.
func (r *response) Error(t *testing.T, status int, code string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	m := r.JSON(t)
	if m["error"] != code {
		t.Fatalf("error = %v, want %s; body %s", m["error"], code, r.Body)
	}
	if msg, _ := m["message"].(string); len(msg) < 10 {
		t.Fatalf("message %q does not tell the user what to do", msg)
	}
}

// do sends a request to the gateway. headers alternate name, value.
func (g *gateway) do(method, path string, body []byte, headers ...string) *response {
	g.t.Helper()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, g.URL+path, rdr)
	if err != nil {
		g.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := g.client.Do(req)
	if err != nil {
		g.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		g.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// postJSON posts a JSON body.
func (g *gateway) postJSON(path string, v any, headers ...string) *response {
	g.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		g.t.Fatal(err)
	}
	return g.do(http.MethodPost, path, b, append([]string{"Content-Type", "application/json"}, headers...)...)
}

// session is the contract's session answer.
type session struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	UnionID      string `json:"unionid"`
	AppID        string `json:"appid"`
	HasProfile   bool   `json:"has_profile"`
	Profile      *struct {
		Nickname  string `json:"nickname"`
		AvatarURL string `json:"avatar_url"`
	} `json:"profile"`
}

// login posts a code and returns the session, failing the test otherwise.
func (g *gateway) login(code string) session {
	g.t.Helper()
	r := g.postJSON("/wx/login", map[string]string{"code": code})
	if r.Status != http.StatusOK {
		g.t.Fatalf("login %q: status %d: %s", code, r.Status, r.Body)
	}
	var s session
	if err := json.Unmarshal(r.Body, &s); err != nil {
		g.t.Fatal(err)
	}
	return s
}

// get calls the upstream through the gate with a token ("" for none).
func (g *gateway) get(path, accessToken string, headers ...string) *response {
	g.t.Helper()
	if accessToken != "" {
		headers = append(headers, "Authorization", "Bearer "+accessToken)
	}
	return g.do(http.MethodGet, path, nil, headers...)
}

// Logs returns everything Caddy logged so far.
func (g *gateway) Logs() string {
	g.t.Helper()
	// Logs are written asynchronously by some sinks; give them a moment.
	time.Sleep(100 * time.Millisecond)
	b, err := os.ReadFile(g.LogPath)
	if err != nil {
		g.t.Fatalf("reading the Caddy log: %v", err)
	}
	return string(b)
}
