// Package integration starts real Caddy servers with the wxauth module in
// front of a real upstream, and talks real HTTP to them; the platform is a
// fake on loopback (fakeplatform.NewServer). Like Caddy's own caddytest/integration,
// these tests share one in-process Caddy, loaded with a new config per test,
// so they do not run in parallel.
package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/wxauth/caddy-wxauth"
	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
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
	Platform *fakeplatform.Server
	Upstream *e2etest.Upstream
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
	// Global is added to the global options block (e.g. a servers block
	// with trusted_proxies).
	Global string
	// Storage is the storage module, on DataDir; default file_system.
	Storage string
	// DataDir reuses a storage folder (for restart tests); "" makes one.
	DataDir string
	// AfterSite is appended to the Caddyfile as is, after the site, for
	// tests that need a second site on the same storage. "{api_base}" and
	// "{upstream}" (host:port) are replaced.
	AfterSite string
}

// The secret and signing key are given as {env.*} placeholders, as the
// README recommends: Caddy itself logs its config at debug level and serves
// it on the admin API, so a literal secret in a Caddyfile would show there.
const (
	secretEnv     = "WXAUTH_TEST_SECRET"
	signingKeyEnv = "WXAUTH_TEST_SIGNING_KEY"
	hs256Line     = "\t\tsigning_key {env." + signingKeyEnv + "}\n"
)

// adminPortEnv overrides the admin port of the test Caddy (caddytest's
// default, 2999), so that two checkouts can run this package at once on
// one machine without loading configs into each other's Caddy.
const adminPortEnv = "WXAUTH_TEST_ADMIN_PORT"

// adminURL is the test Caddy's admin API, e.g. http://localhost:2999.
var adminURL string

func TestMain(m *testing.M) {
	os.Setenv(secretEnv, testSecret)
	os.Setenv(signingKeyEnv, testSigningKey)
	if p := os.Getenv(adminPortEnv); p != "" {
		port, err := strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			fmt.Fprintf(os.Stderr, "%s=%q: want a port number\n", adminPortEnv, p)
			os.Exit(2)
		}
		caddytest.Default.AdminPort = port
	}
	adminURL = fmt.Sprintf("http://localhost:%d", caddytest.Default.AdminPort)
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
		Platform: fakeplatform.NewServer(t),
		Upstream: e2etest.NewUpstream(t),
		DataDir:  cfg.DataDir,
		client:   &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	if g.DataDir == "" {
		g.DataDir = t.TempDir()
	}
	g.LogPath = filepath.Join(t.TempDir(), "caddy.log")
	g.URL = fmt.Sprintf("http://127.0.0.1:%d", e2etest.FreePort(t))
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
	if !strings.Contains(block, "rate_limit") {
		// Every test talks from 127.0.0.1, and the per-IP limiter outlives
		// config loads (as it must across reloads): the default limit would
		// soon refuse the suite itself. The rate-limit tests set their own.
		block += "\t\trate_limit off\n"
	}
	block = strings.ReplaceAll(block, "{api_base}", g.Platform.URL)
	storage := cfg.Storage
	if storage == "" {
		storage = "file_system"
	}
	upstream := strings.TrimPrefix(g.Upstream.URL, "http://")
	after := strings.NewReplacer("{api_base}", g.Platform.URL, "{upstream}", upstream).Replace(cfg.AfterSite)
	caddyfile := fmt.Sprintf(`{
	admin localhost:%d
	persist_config off
	storage %s %s
	log {
		output file %s
		level DEBUG
	}
%s
}

%s {
	wxauth {
%s
	}
%s
	reverse_proxy %s
}
%s
`, caddytest.Default.AdminPort, storage, g.DataDir, g.LogPath, cfg.Global, g.URL, block, cfg.Extra, upstream, after)

	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	// A reload closes the old server's idle connections; a client that
	// reused one would read EOF.
	g.client.CloseIdleConnections()
}

// response is a read answer.
type response = e2etest.Response

// do sends a request to the gateway (or, for a path that is a whole URL,
// to another site of its Caddy). headers alternate name, value.
func (g *gateway) do(method, path string, body []byte, headers ...string) *response {
	g.t.Helper()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	target := path
	if !strings.HasPrefix(path, "http://") {
		target = g.URL + path
	}
	req, err := http.NewRequest(method, target, rdr)
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

// postMultipart posts a multipart/form-data body the way wx.uploadFile
// does: the fields, then the file (when data is not nil).
func (g *gateway) postMultipart(path string, fields map[string]string, fileField, fileName string, data []byte, headers ...string) *response {
	g.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for name, value := range fields {
		if err := mw.WriteField(name, value); err != nil {
			g.t.Fatal(err)
		}
	}
	if data != nil {
		fw, err := mw.CreateFormFile(fileField, fileName)
		if err != nil {
			g.t.Fatal(err)
		}
		fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		g.t.Fatal(err)
	}
	return g.do(http.MethodPost, path, body.Bytes(), append([]string{"Content-Type", mw.FormDataContentType()}, headers...)...)
}

// bearer is the Authorization header pair for an access token.
func bearer(accessToken string) []string {
	return []string{"Authorization", "Bearer " + accessToken}
}

// session is the contract's session answer.
type session = e2etest.Session

// login posts a code and returns the session, failing the test otherwise.
func (g *gateway) login(code string) session {
	g.t.Helper()
	return g.postJSON("/wx/login", map[string]string{"code": code}).Session(g.t, "login "+code)
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
