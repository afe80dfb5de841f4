package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// webAppID is the website (QR login) app. A desktop Chromium is not
// WeChat, so /wx/web/login picks it without an appid.
const webAppID = "wxbrowserqr00001"

// aliceOpenID is who the sandbox's authorize page logs in by default.
var aliceOpenID = fakeplatform.OpenID(webAppID, fakeplatform.DefaultWebUser)

// gatewayConfig is what differs between the tests' gateways.
type gatewayConfig struct {
	// Block is extra lines inside the wxauth block (access_ttl, ...).
	Block string
}

// gateway is one `caddy run` process serving two sites:
//   - URL, the gateway: wxauth (sandbox, one wechat-qr app, rate_limit off)
//     in front of Upstream, except /static/*, the site's own pages, which
//     Caddy serves before wxauth (so a page can run after its session ended);
//   - AttackerURL, another port of 127.0.0.1: another origin of the same
//     site (Chromium's same-site ignores ports), with pages that make the
//     browser send unsafe requests to the gateway.
type gateway struct {
	t           *testing.T
	URL         string // http://127.0.0.1:port
	AttackerURL string // http://127.0.0.1:other-port
	Upstream    *e2etest.Upstream

	port, attackerPort int
	adminAddr          string
	dir                string
	logPath            string // Caddy's log (level DEBUG)
	accessLogPath      string // the gateway site's access log

	proc *e2etest.Process
}

// startGateway writes the pages and the Caddyfile, runs Caddy and waits
// until both sites answer. Caddy is stopped when the test ends.
func startGateway(t *testing.T, cfg gatewayConfig) *gateway {
	t.Helper()
	needBrowser(t) // no browser, no Caddy either (TestMain built none)
	g := &gateway{
		t:            t,
		Upstream:     e2etest.NewUpstream(t),
		dir:          t.TempDir(),
		port:         e2etest.FreePort(t),
		attackerPort: e2etest.FreePort(t),
	}
	g.URL = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.AttackerURL = fmt.Sprintf("http://127.0.0.1:%d", g.attackerPort)
	g.adminAddr = fmt.Sprintf("localhost:%d", e2etest.FreePort(t))
	g.logPath = filepath.Join(g.dir, "caddy.log")
	g.accessLogPath = filepath.Join(g.dir, "access.log")
	g.writePages()
	configPath := filepath.Join(g.dir, "Caddyfile")
	if err := os.WriteFile(configPath, []byte(g.caddyfile(cfg)), 0o600); err != nil {
		t.Fatal(err)
	}
	proc, err := e2etest.StartProcess(caddyBin, g.dir, configPath)
	if err != nil {
		t.Fatal(err)
	}
	g.proc = proc
	// Registered after t.TempDir, so it runs before the folder goes.
	t.Cleanup(g.stop)
	g.waitReady(g.URL + "/static/page.html")
	g.waitReady(g.AttackerURL + "/logout.html")
	return g
}

func (g *gateway) caddyfile(cfg gatewayConfig) string {
	return fmt.Sprintf(`{
	admin %s
	persist_config off
	storage file_system %s
	log {
		output file %s
		level DEBUG
	}
}

# The gateway.
http://127.0.0.1:%d {
	log {
		output file %s
	}
	# The site's own pages, outside the gate.
	handle /static/* {
		root * %s
		file_server
	}
	# Browsers ask for it after every page; it would only crowd the
	# upstream's record.
	handle /favicon.ico {
		respond 404
	}
	handle {
		wxauth {
			app %s {
				platform wechat-qr
			}
			sandbox
			rate_limit off
			%s
		}
		reverse_proxy %s
	}
}

# Another origin of the same site: the attacker's pages.
http://127.0.0.1:%d {
	root * %s
	file_server
}
`, g.adminAddr, filepath.Join(g.dir, "storage"), g.logPath,
		g.port, g.accessLogPath, filepath.Join(g.dir, "own"), webAppID, cfg.Block,
		strings.TrimPrefix(g.Upstream.URL, "http://"),
		g.attackerPort, filepath.Join(g.dir, "attacker"))
}

// The attacker's pages. Each one, once loaded, makes the browser send an
// unsafe request to the gateway, as a page of another origin of the same
// site can: a form POST (a navigation, which carries SameSite=Lax cookies
// within the site) or a no-cors fetch. The form values are what a real
// attack would send.
var attackerPages = map[string]string{
	"logout.html": `<form method="POST" action="{gateway}/wx/logout"></form>`,
	"profile.html": `<form method="POST" action="{gateway}/wx/profile" enctype="multipart/form-data">
<input name="nickname" value="csrf-was-here"></form>`,
	"transfer.html": `<form method="POST" action="{gateway}/api/transfer">
<input name="to" value="attacker"><input name="amount" value="1000"></form>`,
}

// attackerFetchPage posts with fetch() instead of a form; the page's title
// says when the fetch has settled.
const attackerFetchPage = `<script>
fetch("{gateway}/api/transfer", {method: "POST", mode: "no-cors", credentials: "include",
	headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "to=attacker&amount=1000"})
	.then(() => { document.title = "settled" }, (e) => { document.title = "settled: " + e });
</script>`

func (g *gateway) writePages() {
	g.t.Helper()
	write := func(path, body string) {
		path = filepath.Join(g.dir, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(body, "{gateway}", g.URL)), 0o600); err != nil {
			g.t.Fatal(err)
		}
	}
	// The gateway's own page: the tests run their fetch() calls in it.
	write("own/static/page.html", "<!doctype html><title>own page</title><p>The site's own page.</p>")
	// The site's scan login page (scan_test.go).
	write("own/static/scan.html", scanPage)
	for name, form := range attackerPages {
		write("attacker/"+name, "<!doctype html><title>attacker</title>\n"+form+
			"\n<script>document.forms[0].submit()</script>\n")
	}
	write("attacker/transfer-fetch.html", "<!doctype html><title>attacker</title>\n"+attackerFetchPage)
}

// waitReady polls url until it answers 200.
func (g *gateway) waitReady(url string) {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	probe := &http.Client{Timeout: time.Second}
	defer probe.CloseIdleConnections()
	for {
		select {
		case <-g.proc.Exited():
			g.t.Fatalf("caddy exited before serving: %v\n%s", g.proc.Err(), g.logTails())
		default:
		}
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no answer from %s after 30s: %v\n%s", url, err, g.logTails())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for Caddy to end, killing it after 10s.
func (g *gateway) stop() {
	if g.proc.Stop() {
		g.t.Logf("caddy still running 10s after SIGTERM; killed it")
	}
}

// logTails is the end of Caddy's output, log and access log, for failures.
func (g *gateway) logTails() string {
	var b strings.Builder
	for _, p := range []string{g.proc.OutPath, g.logPath, g.accessLogPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			fmt.Fprintf(&b, "--- %s: %v\n", filepath.Base(p), err)
			continue
		}
		text := string(data)
		switch p {
		case g.accessLogPath:
			text = compactAccessLog(text)
		case g.logPath:
			text = fileServerNoise.ReplaceAllString(text, "")
		}
		fmt.Fprintf(&b, "--- last lines of %s:\n%s\n", filepath.Base(p), tail(text, 30))
	}
	return b.String()
}

// fileServerNoise is file_server's debug lines about every page it serves.
var fileServerNoise = regexp.MustCompile(`(?m)^.*"logger":"http.handlers.file_server".*\n`)

// compactAccessLog shows each access log line as status, method, URI and
// user: the full JSON lines are mostly the browser's headers.
func compactAccessLog(log string) string {
	var b strings.Builder
	for line := range strings.Lines(log) {
		var e struct {
			Status  int    `json:"status"`
			UserID  string `json:"user_id"`
			Request struct {
				Method  string              `json:"method"`
				URI     string              `json:"uri"`
				Headers map[string][]string `json:"headers"`
			} `json:"request"`
		}
		if json.Unmarshal([]byte(line), &e) != nil {
			b.WriteString(line)
			continue
		}
		fmt.Fprintf(&b, "%d %s %s user=%q Sec-Fetch-Site=%q Origin=%q\n", e.Status, e.Request.Method, e.Request.URI, e.UserID,
			strings.Join(e.Request.Headers["Sec-Fetch-Site"], ","), strings.Join(e.Request.Headers["Origin"], ","))
	}
	return b.String()
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// upstreamSaw is every request the upstream got for path.
func (g *gateway) upstreamSaw(path string) []e2etest.Seen {
	var out []e2etest.Seen
	for _, s := range g.Upstream.Requests() {
		if s.Path == path {
			out = append(out, s)
		}
	}
	return out
}

// upstreamSummary lists what reached the upstream, for failures.
func (g *gateway) upstreamSummary() string {
	var b strings.Builder
	for _, s := range g.Upstream.Requests() {
		fmt.Fprintf(&b, "  %s %s X-WX-OPENID=%q Cookie=%q Authorization=%q\n",
			s.Method, s.Path, s.Header.Get("X-Wx-Openid"), s.Header.Get("Cookie"), short(s.Header.Get("Authorization")))
	}
	if b.Len() == 0 {
		return "  (nothing)\n"
	}
	return b.String()
}
