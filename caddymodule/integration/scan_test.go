package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const scanApp2 = "wxscanapp0000002" // a second mini program with scan_login

// scanApps is the test mini program with scan_login (its page, a trial
// version) and a second one, with its own page.
const scanApps = `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
			scan_login pages/scan/index trial
		}
		app ` + scanApp2 + ` {
			secret {env.` + secretEnv + `}
			scan_login
		}
		api_base {api_base}
		platform_timeout 5s # the fake draws a real QR code: slow under -race on a busy machine
`

// scanBrowser is a website's page: its scan cookie and its ticket.
type scanBrowser struct {
	g      *gateway
	cookie *http.Cookie // wxauth_scan
	ticket string
	qrURL  string
}

// scanStart posts /wx/scan as a browser (with the browser's scan cookie,
// if it has one), and checks the answer.
func (g *gateway) scanStart(b *scanBrowser, body any) *scanBrowser {
	g.t.Helper()
	if b == nil {
		b = &scanBrowser{g: g}
	}
	headers := []string{"Sec-Fetch-Site", "same-origin"}
	if b.cookie != nil {
		headers = append(headers, "Cookie", b.cookie.Name+"="+b.cookie.Value)
	}
	var r *response
	if body == nil {
		r = g.do(http.MethodPost, "/wx/scan", nil, headers...)
	} else {
		r = g.postJSON("/wx/scan", body, headers...)
	}
	if r.Status != http.StatusOK {
		g.t.Fatalf("POST /wx/scan: %d %s", r.Status, r.Body)
	}
	var a struct {
		Ticket    string `json:"ticket"`
		QRURL     string `json:"qr_url"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Body, &a); err != nil {
		g.t.Fatal(err)
	}
	if len(a.Ticket) != 32 || a.QRURL != "/wx/scan/"+a.Ticket+".png" || a.ExpiresIn < 290 || a.ExpiresIn > 300 {
		g.t.Fatalf("POST /wx/scan answered %s", r.Body)
	}
	if c := cookies(r)["wxauth_scan"]; c != nil {
		checkCookie(g.t, c, "/wx/scan")
		if b.cookie != nil && c.Value != b.cookie.Value {
			g.t.Fatalf("a second ticket changed the browser's key")
		}
		b.cookie = c
	}
	if b.cookie == nil {
		g.t.Fatalf("POST /wx/scan set no wxauth_scan cookie: %v", r.Header)
	}
	b.ticket, b.qrURL = a.Ticket, a.QRURL
	return b
}

// wait is the browser's GET /wx/scan/wait.
func (b *scanBrowser) wait(seen string) *response {
	b.g.t.Helper()
	path := "/wx/scan/wait?ticket=" + b.ticket
	if seen != "" {
		path += "&seen=" + seen
	}
	return b.g.do(http.MethodGet, path, nil, "Cookie", b.cookie.Name+"="+b.cookie.Value)
}

func status(t *testing.T, r *response) string {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("wait: %d %s", r.Status, r.Body)
	}
	s, _ := r.JSON(t)["status"].(string)
	return s
}

// loginTo logs a mini program's user in to one of several apps.
func (g *gateway) loginTo(appid, code string) session {
	g.t.Helper()
	return g.postJSON("/wx/login", map[string]string{"code": code, "appid": appid}).Session(g.t, "login "+code+" to "+appid)
}

// step posts the mini program's scanned, confirm or cancel.
func (g *gateway) scanStep(step, ticket, accessToken string) *response {
	g.t.Helper()
	return g.postJSON("/wx/scan/"+step, map[string]string{"ticket": ticket}, bearer(accessToken)...)
}

// The whole flow: a ticket and its code, the mini program's scan and
// confirm, and the browser's wait following them to a cookie session of
// the mini program's user, once.
func TestScanLogin(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: scanApps})
	b := g.scanStart(nil, map[string]string{"next": "/account?tab=1"})

	// The code: getwxacodeunlimit's image, asked for once, for the
	// ticket, with the configured page and version.
	for range 2 {
		r := g.do(http.MethodGet, b.qrURL, nil)
		want, _ := fakeplatform.CodePNG("pages/scan/index", b.ticket)
		if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "image/png" || string(r.Body) != string(want) {
			t.Fatalf("GET %s: %d %s (%d bytes)", b.qrURL, r.Status, r.Header.Get("Content-Type"), len(r.Body))
		}
	}
	codes := g.Platform.WxaCodes()
	if len(codes) != 1 || codes[0].Scene != b.ticket || codes[0].Page != "pages/scan/index" || codes[0].EnvVersion != "trial" {
		t.Fatalf("the platform made %+v; want one code for the ticket, page and env_version", codes)
	}

	if s := status(t, b.wait("scanned")); s != "pending" {
		// Not what the browser has seen: answered at once.
		t.Fatalf("first wait: %q", s)
	}
	amy := g.loginTo(testAppID, "scan-amy")
	done := make(chan *response, 1)
	go func() { done <- b.wait("pending") }()
	time.Sleep(200 * time.Millisecond)
	if r := g.scanStep("scanned", b.ticket, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("scanned: %d %s", r.Status, r.Body)
	}
	select {
	case r := <-done:
		if s := status(t, r); s != "scanned" {
			t.Fatalf("wait after the scan: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait did not follow the scan")
	}
	if r := g.scanStep("confirm", b.ticket, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	r := b.wait("scanned")
	if s := status(t, r); s != "confirmed" || r.JSON(t)["next"] != "/account?tab=1" {
		t.Fatalf("wait after the confirm: %s", r.Body)
	}
	tok := cookies(r)["wxauth_token"]
	checkCookie(t, tok, "/")
	checkCookie(t, cookies(r)["wxauth_refresh"], "/wx/")

	// The cookie session is amy's, at the gate.
	if r := g.get("/account", "", "Cookie", "wxauth_token="+tok.Value); r.Status != http.StatusOK {
		t.Fatalf("the gate refused the scan session: %d %s", r.Status, r.Body)
	}
	h := g.Upstream.LastHeaders()
	if h.Get("X-Wx-Openid") != amy.OpenID || h.Get("X-Wx-Appid") != testAppID || h.Get("X-Wx-Unionid") != amy.UnionID {
		t.Fatalf("upstream saw %v, want amy of %s", h, testAppID)
	}

	// Once: the ticket is used now.
	b.wait("").Error(t, http.StatusBadRequest, "invalid_code")
	g.scanStep("confirm", b.ticket, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	g.do(http.MethodGet, b.qrURL, nil).Error(t, http.StatusBadRequest, "invalid_code")

	// The second ticket of the same browser keeps its key; cancel ends it.
	b2 := g.scanStart(&scanBrowser{g: g, cookie: b.cookie}, nil)
	if r := g.scanStep("cancel", b2.ticket, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("cancel: %d %s", r.Status, r.Body)
	}
	if s := status(t, b2.wait("scanned")); s != "canceled" {
		t.Fatalf("wait after cancel: %q", s)
	}
	if s := status(t, b2.wait("canceled")); s != "canceled" {
		t.Fatalf("wait after cancel, seen: %q (a final status is answered at once)", s)
	}
	g.scanStep("confirm", b2.ticket, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")

	logs := g.Logs()
	for _, want := range []string{`"msg":"scan"`, `"step":"confirm"`, `"flow":"scan"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s in the log", want)
		}
	}
}

// Every refusal the contract names, and the request mistakes.
func TestScanLoginRefusals(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: scanApps})
	b := g.scanStart(nil, nil)
	amy, bea := g.loginTo(testAppID, "scan-refuse-amy"), g.loginTo(testAppID, "scan-refuse-bea")

	// Another browser: no cookie, or another key.
	g.do(http.MethodGet, "/wx/scan/wait?ticket="+b.ticket, nil).Error(t, http.StatusBadRequest, "invalid_code")
	other := g.scanStart(nil, nil)
	g.do(http.MethodGet, "/wx/scan/wait?ticket="+b.ticket, nil, "Cookie", "wxauth_scan="+other.cookie.Value).
		Error(t, http.StatusBadRequest, "invalid_code")
	// A ticket of the other app.
	b2 := g.scanStart(nil, map[string]string{"appid": scanApp2})
	mini2 := g.loginTo(scanApp2, "scan-refuse-cat")
	g.scanStep("confirm", b.ticket, mini2.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	g.scanStep("confirm", b2.ticket, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	// Scanned by amy: bea may not confirm it; amy confirms once.
	g.scanStep("scanned", b.ticket, amy.AccessToken)
	g.scanStep("confirm", b.ticket, bea.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	if r := g.scanStep("confirm", b.ticket, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("confirm: %d %s", r.Status, r.Body)
	}
	g.scanStep("confirm", b.ticket, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	g.scanStep("cancel", b.ticket, amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	// Unknown tickets.
	g.scanStep("confirm", "NoSuchTicketNoSuchTicketNoSuch00", amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	g.scanStep("confirm", "../../etc", amy.AccessToken).Error(t, http.StatusBadRequest, "invalid_code")
	g.do(http.MethodGet, "/wx/scan/NoSuchTicketNoSuchTicketNoSuch00.png", nil).Error(t, http.StatusBadRequest, "invalid_code")

	// The mini program's endpoints take a Bearer token, never a cookie.
	g.postJSON("/wx/scan/confirm", map[string]string{"ticket": b2.ticket}).Error(t, http.StatusUnauthorized, "login_required")
	g.postJSON("/wx/scan/confirm", map[string]string{"ticket": b2.ticket}, "Cookie", "wxauth_token="+mini2.AccessToken).
		Error(t, http.StatusUnauthorized, "login_required")
	g.scanStep("confirm", b2.ticket, mini2.AccessToken+"x").Error(t, http.StatusUnauthorized, "token_invalid")
	g.postJSON("/wx/scan/confirm", map[string]string{}, bearer(mini2.AccessToken)...).Error(t, http.StatusBadRequest, "invalid_request")

	// The requests.
	g.do(http.MethodGet, "/wx/scan/wait", nil).Error(t, http.StatusBadRequest, "invalid_request")
	g.do(http.MethodGet, "/wx/scan/wait?ticket="+b2.ticket+"&seen=done", nil, "Cookie", "wxauth_scan="+b2.cookie.Value).
		Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/scan", map[string]string{"appid": "wxunknown"}, "Sec-Fetch-Site", "same-origin").Error(t, http.StatusBadRequest, "invalid_request")
	g.do(http.MethodPost, "/wx/scan", []byte("{"), "Content-Type", "application/json").Error(t, http.StatusBadRequest, "invalid_request")
	g.do(http.MethodGet, "/wx/scan", nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")
	g.do(http.MethodPost, "/wx/scan/wait", nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")
	g.do(http.MethodGet, "/wx/scan/confirm", nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")
	g.do(http.MethodDelete, "/wx/scan/confirm", nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")
	g.do(http.MethodGet, "/wx/scan/nothing", nil).Error(t, http.StatusNotFound, "invalid_request")
	// The sandbox's phone is the sandbox's only.
	g.postJSON("/wx/scan/sandbox/confirm", map[string]string{"ticket": b2.ticket}).Error(t, http.StatusNotFound, "invalid_request")

	// Another origin may not make tickets for the user's browser.
	g.do(http.MethodPost, "/wx/scan", nil, "Sec-Fetch-Site", "cross-site").Error(t, http.StatusForbidden, "forbidden_origin")
	g.do(http.MethodPost, "/wx/scan", nil, "Origin", "http://evil.example").Error(t, http.StatusForbidden, "forbidden_origin")

	// The platform fails: no ticket. (The fake's missing page.)
	g.load(gatewayConfig{Block: strings.Replace(scanApps, "scan_login pages/scan/index trial", "scan_login "+fakeplatform.PageMissing, 1)})
	r := g.do(http.MethodPost, "/wx/scan", nil)
	r.Error(t, http.StatusBadGateway, "platform_unavailable")
	if !strings.Contains(r.Code()+string(r.Body), "page") {
		t.Errorf("the error does not say the page is wrong: %s", r.Body)
	}
	// No app with scan_login.
	g.load(gatewayConfig{})
	g.do(http.MethodPost, "/wx/scan", nil).Error(t, http.StatusBadRequest, "invalid_request")
}

// A config reload does not wait for open long polls: they answer the
// status they had, at once, and the browser asks the new config.
func TestScanWaitEndsOnReload(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: scanApps})
	b := g.scanStart(nil, nil)
	done := make(chan *response, 1)
	go func() { done <- b.wait("pending") }()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	g.load(gatewayConfig{Block: scanApps, Extra: "\theader X-Reloaded yes\n"})
	select {
	case r := <-done:
		if s := status(t, r); s != "pending" {
			t.Fatalf("wait at the reload: %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the open wait did not end at the reload")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the reload took %v with a wait open", d)
	}
	// The ticket lives on in the new config.
	amy := g.loginTo(testAppID, "scan-reload-amy")
	if r := g.scanStep("confirm", b.ticket, amy.AccessToken); r.Status != http.StatusNoContent {
		t.Fatalf("confirm after the reload: %d %s", r.Status, r.Body)
	}
	if s := status(t, b.wait("pending")); s != "confirmed" {
		t.Fatalf("wait after the reload: %q", s)
	}
}
