// Package cluster runs several real Caddy processes (the cmd/caddy binary,
// built once in TestMain) that share one Caddy storage folder, as nodes of a
// cluster behind a load balancer would, and checks that a session made on one
// node behaves the same on every other: tokens verify everywhere, a refresh
// or a logout on one node is enforced on all of them, and tokens survive a
// restart and a config reload.
//
// Each test makes its own cluster (storage, fake platform, upstream, ports),
// so the tests run in parallel.
//
// The storage is a folder (file_system), or, for the tests in redis_test.go,
// one Redis through caddy-storage-redis with a key prefix per test. Those
// nodes run a second binary, cmd/caddy plus the Redis module, that TestMain
// builds from a scratch module (see e2etest.BuildCaddyWithRedis), and the
// Redis is $WXAUTH_REDIS_ADDR or a redis-server that TestMain starts.
// Without a Redis (neither the variable nor redis-server) or without the
// shared folder's copy of the module, the Redis tests skip, except under
// CI=true, where the package fails.
package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const (
	testAppID  = "wxclusterapp0001"
	testSecret = "S3CRET-cluster-appsecret-0001"
	secretEnv  = "WXAUTH_TEST_SECRET"
)

// caddyBin is the Caddy with wxauth that TestMain builds.
var caddyBin string

// For the Redis tests: the Caddy with wxauth and caddy-storage-redis, the
// Redis, or why there is none (the tests skip with it).
var (
	redisCaddyBin string
	redisServer   *e2etest.Redis
	noRedis       string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	flag.Parse() // for testing.Verbose
	os.Setenv(secretEnv, testSecret)
	dir, err := os.MkdirTemp("", "wxauth-cluster-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	// The two builds share the build cache and overlap well: most of a
	// warm build is the link.
	var redisErr error
	redisDone := make(chan struct{})
	go func() {
		defer close(redisDone)
		redisErr = setUpRedis(dir)
	}()
	caddyBin, err = e2etest.BuildCaddy(dir)
	<-redisDone
	if redisServer != nil {
		defer redisServer.Stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster tests:", err)
		return 1
	}
	if redisErr != nil {
		missing := errors.Is(redisErr, e2etest.ErrNoRedisServer) || errors.Is(redisErr, e2etest.ErrNoRedisModule)
		if !missing || e2etest.InCI() {
			fmt.Fprintf(os.Stderr, "cluster tests: Redis: %v\n", redisErr)
			return 1
		}
		noRedis = redisErr.Error()
	}
	return m.Run()
}

// setUpRedis finds or starts the Redis and builds the Caddy for it.
func setUpRedis(dir string) error {
	redisDir := filepath.Join(dir, "redis")
	if err := os.Mkdir(redisDir, 0o700); err != nil {
		return err
	}
	r, err := e2etest.FindRedis(redisDir)
	if err != nil {
		return err
	}
	redisServer = r
	b, err := e2etest.BuildCaddyWithRedis(dir)
	if err != nil {
		return err
	}
	redisCaddyBin = b.Bin
	if testing.Verbose() {
		fmt.Printf("cluster tests: Redis at %s; Caddy with %s built in %v (go mod tidy %v)\n",
			r.Addr, e2etest.RedisModulePath, (b.Tidy + b.Build).Round(100*time.Millisecond), b.Tidy.Round(10*time.Millisecond))
	}
	if len(b.Bumped) > 0 {
		fmt.Printf("cluster tests: the Redis build uses other versions than go.mod: %s\n", strings.Join(b.Bumped, "; "))
	}
	return nil
}

// cluster is what the nodes of one test share: the storage, the fake
// platform and the upstream app.
type cluster struct {
	t        *testing.T
	bin      string // the Caddy the nodes run
	storage  string // the storage global option, without "storage "
	platform *fakeplatform.Server
	upstream *e2etest.Upstream
	client   *http.Client

	// For a cluster on Redis: the server and this test's key prefix.
	redis     *e2etest.Redis
	keyPrefix string
}

// newCluster makes a cluster whose nodes share a storage folder.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := newClusterOn(t, caddyBin)
	c.storage = "file_system " + t.TempDir()
	return c
}

// newRedisCluster makes a cluster whose nodes share the Redis, under a key
// prefix of this test's own. It skips the test when there is no Redis
// (TestMain has already failed the package under CI).
func newRedisCluster(t *testing.T) *cluster {
	t.Helper()
	if noRedis != "" {
		t.Skip("no Redis to test against: " + noRedis)
	}
	return newRedisClusterOn(t, redisServer)
}

// newRedisClusterOn is newRedisCluster on the Redis r (a test's own, for
// tests that stop it).
func newRedisClusterOn(t *testing.T, r *e2etest.Redis) *cluster {
	t.Helper()
	c := newClusterOn(t, redisCaddyBin)
	c.redis = r
	c.keyPrefix = r.KeyPrefix(t)
	c.storage = fmt.Sprintf("redis {\n\t\taddress %s\n\t\tkey_prefix %s\n\t}", r.Addr, c.keyPrefix)
	// Registered before any node starts, so it runs after they stopped:
	// a Redis that outlives the run ($WXAUTH_REDIS_ADDR) keeps nothing of
	// the test.
	t.Cleanup(func() {
		if err := r.RemoveStorage(c.keyPrefix); err != nil {
			t.Logf("removing the test's keys from Redis: %v", err)
		}
	})
	return c
}

func newClusterOn(t *testing.T, bin string) *cluster {
	c := &cluster{
		t:        t,
		bin:      bin,
		platform: fakeplatform.NewServer(t),
		upstream: e2etest.NewUpstream(t),
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	t.Cleanup(c.client.CloseIdleConnections)
	return c
}

// nodeConfig is what differs between nodes and between a config and its
// reload.
type nodeConfig struct {
	// Block is extra lines inside the wxauth block (access_ttl, revocation_sync, ...).
	Block string
	// Extra is site directives after wxauth, before reverse_proxy.
	Extra string
	// App is extra lines inside the test app's block (scan_login, ...).
	App string
}

// syncBlock makes a node read revocations from storage every second, so
// tests of propagation finish quickly. Only the tests that need it set it.
const syncBlock = "revocation_sync 1s"

// node is one `caddy run` process.
type node struct {
	t          *testing.T // where helpers report; a subtest may swap it (see use)
	owner      *testing.T // the test that started the node, for cleanup
	c          *cluster
	name       string
	URL        string // http://127.0.0.1:port
	adminAddr  string // localhost:port
	dir        string
	configPath string
	logPath    string // Caddy's own log (level DEBUG)
	port       int

	proc     *e2etest.Process
	dumpOnce sync.Once
}

// start runs a new node on the cluster's storage and waits until it
// answers. The node is stopped when the test ends; if the test failed, the
// tail of its log is printed first.
func (c *cluster) start(name string, cfg nodeConfig) *node {
	c.t.Helper()
	n := c.launch(name, cfg)
	n.waitReady()
	return n
}

// launch starts the process without waiting for it to serve.
func (c *cluster) launch(name string, cfg nodeConfig) *node {
	t := c.t
	t.Helper()
	n := &node{
		t:     t,
		owner: t,
		c:     c,
		name:  name,
		dir:   t.TempDir(),
		port:  e2etest.FreePort(t),
	}
	n.URL = fmt.Sprintf("http://127.0.0.1:%d", n.port)
	n.adminAddr = fmt.Sprintf("localhost:%d", e2etest.FreePort(t))
	n.configPath = filepath.Join(n.dir, "Caddyfile")
	n.logPath = filepath.Join(n.dir, "caddy.log")
	if err := os.WriteFile(n.configPath, []byte(n.caddyfile(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := e2etest.StartProcess(n.c.bin, n.dir, n.configPath, secretEnv+"="+testSecret)
	if err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	n.proc = proc
	// Registered after t.TempDir, so it runs before the folders go.
	t.Cleanup(func() {
		if t.Failed() {
			n.dumpLogs()
		}
		n.stop()
	})
	return n
}

func (n *node) caddyfile(cfg nodeConfig) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage %s
	log {
		output file %s
		level DEBUG
	}
}

http://127.0.0.1:%d {
	wxauth {
		app %s {
			secret {env.%s}
			%s
		}
		api_base %s
		platform_timeout 2s
		%s
	}
	%s
	reverse_proxy %s {
		header_up X-Test-Node %s
	}
}
`, n.adminAddr, n.c.storage, n.logPath, n.port, testAppID, secretEnv, cfg.App, n.c.platform.URL,
		cfg.Block, cfg.Extra, strings.TrimPrefix(n.c.upstream.URL, "http://"), n.name)
}

// waitReady polls the site until it answers anything at all.
func (n *node) waitReady() {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	probe := &http.Client{Timeout: time.Second}
	defer probe.CloseIdleConnections()
	for {
		select {
		case <-n.proc.Exited():
			n.dumpLogs()
			n.t.Fatalf("node %s: caddy exited before serving: %v", n.name, n.proc.Err())
		default:
		}
		resp, err := probe.Get(n.URL + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			n.dumpLogs()
			n.t.Fatalf("node %s: no answer on %s after 30s: %v", n.name, n.URL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to end, killing it after 10s.
func (n *node) stop() {
	n.c.client.CloseIdleConnections()
	if n.proc.Stop() {
		n.owner.Logf("node %s: still running 10s after SIGTERM; killed it", n.name)
	}
}

// use makes the node's helpers report to t (a subtest) until the returned
// func restores the owner.
func (n *node) use(t *testing.T) (restore func()) {
	n.t = t
	return func() { n.t = n.owner }
}

// reload writes a new config and has the running node load it through its
// admin API, as an operator's `caddy reload` does.
func (n *node) reload(cfg nodeConfig) {
	n.t.Helper()
	if err := os.WriteFile(n.configPath, []byte(n.caddyfile(cfg)), 0o600); err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(n.c.bin, "reload", "--config", n.configPath, "--adapter", "caddyfile", "--address", n.adminAddr)
	cmd.Dir = n.dir
	cmd.Env = append(os.Environ(), secretEnv+"="+testSecret)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("node %s: caddy reload: %v\n%s", n.name, err, out)
	}
}

// dumpLogs prints the tail of the node's Caddy log and process output.
// Once per node is enough.
func (n *node) dumpLogs() {
	n.dumpOnce.Do(n.dumpLogsNow)
}

func (n *node) dumpLogsNow() {
	for _, p := range []string{n.proc.OutPath, n.logPath} {
		b, err := os.ReadFile(p)
		if err != nil {
			n.owner.Logf("node %s: %s: %v", n.name, filepath.Base(p), err)
			continue
		}
		n.owner.Logf("node %s (%s): last lines of %s:\n%s", n.name, n.URL, filepath.Base(p), tail(string(b), 60))
	}
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// response is an answer, read in full.
type response = e2etest.Response

// request builds a request to the node; headers alternate name, value.
func (n *node) request(method, path string, body []byte, headers ...string) (*http.Request, error) {
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, n.URL+path, rdr)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return req, nil
}

// send does a request and reads the answer. Safe to call from goroutines.
func (n *node) send(req *http.Request) (*response, error) {
	resp, err := n.c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// do sends a request, failing the test on a transport error.
func (n *node) do(method, path string, body []byte, headers ...string) *response {
	n.t.Helper()
	req, err := n.request(method, path, body, headers...)
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := n.send(req)
	if err != nil {
		n.t.Fatalf("node %s: %s %s: %v", n.name, method, path, err)
	}
	return r
}

func jsonBody(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (n *node) postJSON(path string, v any, headers ...string) *response {
	n.t.Helper()
	return n.do(http.MethodPost, path, jsonBody(n.t, v), append([]string{"Content-Type", "application/json"}, headers...)...)
}

// session is the contract's session answer.
type session = e2etest.Session

// decodeSession checks a session answer, and that it is for the test app.
func decodeSession(t *testing.T, what string, r *response) session {
	t.Helper()
	s := r.Session(t, what)
	if s.AppID != testAppID {
		t.Fatalf("%s: session for app %q, want %q", what, s.AppID, testAppID)
	}
	return s
}

// login posts a code and returns the session.
func (n *node) login(code string) session {
	n.t.Helper()
	return decodeSession(n.t, "login on "+n.name, n.postJSON("/wx/login", map[string]string{"code": code}))
}

// refreshRaw posts a refresh token and returns whatever comes back.
func (n *node) refreshRaw(refreshToken string) *response {
	n.t.Helper()
	return n.postJSON("/wx/refresh", map[string]string{"refresh_token": refreshToken})
}

// refresh spends a refresh token and returns the new session, which must be
// the same user's with a new refresh token.
func (n *node) refresh(old session) session {
	n.t.Helper()
	s := decodeSession(n.t, "refresh on "+n.name, n.refreshRaw(old.RefreshToken))
	if s.OpenID != old.OpenID || s.AppID != old.AppID {
		n.t.Fatalf("refresh on %s changed the user: %s/%s, was %s/%s", n.name, s.OpenID, s.AppID, old.OpenID, old.AppID)
	}
	if s.RefreshToken == old.RefreshToken {
		n.t.Fatalf("refresh on %s answered the spent refresh token again", n.name)
	}
	return s
}

// logout posts /wx/logout with the access token.
func (n *node) logout(accessToken string) *response {
	n.t.Helper()
	return n.do(http.MethodPost, "/wx/logout", nil, "Authorization", "Bearer "+accessToken)
}

// get calls the upstream through the gate ("" for no token).
func (n *node) get(path, accessToken string) *response {
	n.t.Helper()
	var headers []string
	if accessToken != "" {
		headers = []string{"Authorization", "Bearer " + accessToken}
	}
	return n.do(http.MethodGet, path, nil, headers...)
}

// mustPass checks that the gate lets the token through to the upstream as
// this user, via this node.
func (n *node) mustPass(path string, s session) {
	n.t.Helper()
	r := n.get(path, s.AccessToken)
	if r.Status != http.StatusOK {
		n.t.Fatalf("gate on %s refused a valid token: %d %s", n.name, r.Status, r.Body)
	}
	h := n.c.upstream.LastHeaders()
	if got := h.Values("X-Wx-Openid"); len(got) != 1 || got[0] != s.OpenID {
		n.t.Fatalf("via %s the upstream saw X-WX-OPENID %q, want [%q]", n.name, got, s.OpenID)
	}
	if got := h.Get("X-Test-Node"); got != n.name {
		n.t.Fatalf("the upstream's latest request came via node %q, want %q", got, n.name)
	}
	if got := h.Get("Authorization"); got != "" {
		n.t.Fatalf("the access token reached the upstream via %s", n.name)
	}
}

// mustRefuse checks that the gate answers 401 with this error code, and the
// WWW-Authenticate the contract gives token errors.
func (n *node) mustRefuse(path, accessToken, code string) {
	n.t.Helper()
	r := n.get(path, accessToken)
	r.Error(n.t, http.StatusUnauthorized, code)
	if got, want := r.Header.Get("WWW-Authenticate"), `Bearer realm="wxauth", error="invalid_token"`; got != want {
		n.t.Fatalf("node %s: WWW-Authenticate = %q, want %q", n.name, got, want)
	}
}

// waitRevoked polls the gate on n with accessToken until it answers 401
// token_revoked, failing after limit, and returns how long after since that
// happened. Until then the token must still pass (200): any other answer
// fails at once.
func (n *node) waitRevoked(accessToken string, since time.Time, limit time.Duration) time.Duration {
	n.t.Helper()
	deadline := since.Add(limit)
	for {
		r := n.get("/poll", accessToken)
		at := time.Now()
		switch {
		case r.Status == http.StatusUnauthorized && r.Code() == "token_revoked":
			return at.Sub(since)
		case r.Status != http.StatusOK:
			n.t.Fatalf("node %s: while waiting for token_revoked the gate answered %d %s", n.name, r.Status, r.Body)
		}
		if at.After(deadline) {
			n.t.Fatalf("node %s still lets the revoked token through %v later (want 401 token_revoked)", n.name, at.Sub(since).Round(time.Millisecond))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendAtOnce sends reqs[i] to nodes[i], all at the same moment: each node
// first gets a request that leaves a kept-alive connection open, so no
// request waits for a TCP handshake, and the goroutines start together
// from a barrier.
func sendAtOnce(t *testing.T, nodes []*node, reqs []*http.Request) []*response {
	t.Helper()
	for _, n := range nodes {
		n.get("/warm", "")
	}
	var (
		start   = make(chan struct{})
		ready   sync.WaitGroup
		done    sync.WaitGroup
		answers = make([]*response, len(reqs))
		errs    = make([]error, len(reqs))
	)
	for i, req := range reqs {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			answers[i], errs[i] = nodes[i].send(req)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %s: %s %s: %v", nodes[i].name, reqs[i].Method, reqs[i].URL.Path, err)
		}
	}
	return answers
}
