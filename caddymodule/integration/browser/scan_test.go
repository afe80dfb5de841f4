package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// scanAppID is a mini program with scan_login, beside the website app.
const scanAppID = "wxbrowserscan001"

// scanBlock adds it to the gateway.
const scanBlock = `app ` + scanAppID + ` {
				scan_login pages/scan/index
			}`

// scanPage is a website's scan login page, as docs/scan-login.md has it:
// it asks for a ticket, shows the code, and long-polls until the phone
// confirms, then goes where the answer says.
const scanPage = `<!doctype html>
<title>scan login</title>
<p id="status">starting</p>
<img id="qr" alt="Scan with WeChat" width="215" height="215">
<script>
const show = (s) => { document.getElementById('status').textContent = s }
async function scanLogin(next) {
  const start = await fetch('/wx/scan', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({next}),
  })
  const a = await start.json()
  if (!start.ok) { show('error: ' + a.message); return }
  window.scanTicket = a.ticket
  document.getElementById('qr').src = a.qr_url
  let seen = 'pending'
  show(seen)
  for (;;) {
    const r = await fetch('/wx/scan/wait?ticket=' + encodeURIComponent(a.ticket) + '&seen=' + seen)
    const w = await r.json()
    if (!r.ok) { show('error: ' + w.message); return }
    seen = w.status
    show(seen)
    if (seen === 'confirmed') { location.assign(w.next); return }
    if (seen === 'canceled' || seen === 'expired') return
  }
}
scanLogin('/app/after-scan?from=scan')
</script>`

// evalPage runs a script in the tab's page and returns its value.
func evalPage[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, js, err)
	}
	return v
}

// waitPage polls a script in the page until it is true.
func waitPage(tb *tab, what, js string) {
	tb.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	for !evalPage[bool](tb, js) {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: %s: not after %v (status %q)", tb.name, what, browserTimeout,
				evalPage[string](tb, `(document.getElementById('status') || {}).textContent || ''`))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// phone posts the sandbox's stand-in for the mini program's step.
func phone(t *testing.T, g *gateway, step, ticket, user string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"ticket": ticket, "user": user})
	resp, err := http.Post(g.URL+"/wx/scan/sandbox/"+step, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("the sandbox's %s: %d", step, resp.StatusCode)
	}
}

// The scan page in a real browser: it shows the mini program's code (the
// image, loaded and 430 pixels wide), says "scanned" when the phone has
// opened it, and once the phone confirms it lands on next with a cookie
// session of the user who confirmed. Its scan cookie goes to the scan
// endpoints only.
func TestScanPageLogsTheBrowserIn(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayConfig{Block: scanBlock})
	b, tb := startBrowser(t, g)
	mark := tb.mark()
	tb.visit("/static/scan.html")

	waitPage(tb, "the code is shown", `(() => { const i = document.getElementById('qr'); return i.complete && i.naturalWidth === 430 })()`)
	ticket := evalPage[string](tb, `window.scanTicket`)
	if len(ticket) != 32 {
		t.Fatalf("ticket %q", ticket)
	}
	if src := evalPage[string](tb, `document.getElementById('qr').src`); src != g.URL+"/wx/scan/"+ticket+".png" {
		t.Fatalf("the image is %s", src)
	}
	checkSessionCookie(t, b.cookie("wxauth_scan"), "wxauth_scan", "/wx/scan", 10*time.Minute)
	if b.cookie("wxauth_token") != nil {
		t.Fatal("a session cookie before the confirm")
	}

	phone(t, g, "scanned", ticket, "scanbob")
	waitPage(tb, "the page says scanned", `document.getElementById('status').textContent === 'scanned'`)
	phone(t, g, "confirm", ticket, "scanbob")
	waitPage(tb, "the page went to next", `location.pathname === '/app/after-scan'`)

	waitPage(tb, "the upstream's page loaded", `document.body && document.body.innerText.includes('after-scan')`)
	e := tb.echo()
	h := http.Header(e.Headers)
	if e.Path != "/app/after-scan" || h.Get("X-Wx-Openid") != fakeplatform.OpenID(scanAppID, "scanbob") || h.Get("X-Wx-Appid") != scanAppID {
		t.Fatalf("the upstream answered %s as %v, want scanbob of %s", e.Path, h, scanAppID)
	}
	checkSessionCookie(t, b.cookie("wxauth_token"), "wxauth_token", "/", 2*time.Hour)
	checkRefreshCookie(t, b)

	// The scan cookie went with the scan endpoints' requests, and with
	// nothing else.
	sawWait := false
	for _, r := range tb.since(mark) {
		if _, ok := r.Sent["wxauth_scan"]; ok {
			if !strings.HasPrefix(r.URL, g.URL+"/wx/scan") {
				t.Errorf("the scan cookie went with %s", r.URL)
			}
			sawWait = sawWait || strings.HasPrefix(r.URL, g.URL+"/wx/scan/wait?")
		}
	}
	if !sawWait {
		t.Errorf("no wait carried the scan cookie; requests:\n%s", tb.requestsSummary())
	}
	if got := g.upstreamSaw("/app/after-scan"); len(got) != 1 || strings.Contains(got[0].Header.Get("Cookie"), "wxauth_") {
		t.Errorf("the upstream saw %+v", got)
	}
}
