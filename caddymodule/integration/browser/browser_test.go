package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// browserTimeout bounds each wait on the browser. Generous: CI machines
// are small and other tests run beside these.
const browserTimeout = 30 * time.Second

// browser is one Chromium process with a new empty profile, for one test.
type browser struct {
	t    *testing.T
	g    *gateway
	ctx  context.Context // the browser's first tab; every tab is a child of it
	out  *lockedBuffer   // Chromium's stdout and stderr
	cdp  *lockedBuffer   // chromedp's own errors
	tabs []*tab
	mu   sync.Mutex
	// closeTabs closes the tabs newTab opened, before the browser goes
	// (and after a failure's dump has read them).
	closeTabs []context.CancelFunc
}

// startBrowser starts Chromium for g and opens its first tab. Chromium is
// closed when the test ends; if the test failed, first every tab's URL and
// requests, the cookies and the tails of Caddy's logs are printed.
//
// A browser that does not start fails the test, never skips it: only a
// missing browser skips (see needBrowser).
func startBrowser(t *testing.T, g *gateway) (*browser, *tab) {
	t.Helper()
	needBrowser(t)
	b := &browser{t: t, g: g, out: &lockedBuffer{}, cdp: &lockedBuffer{}}

	// Requests to anything but loopback go to a proxy that is not there,
	// and no name but localhost resolves: nothing the browser does leaves
	// 127.0.0.1, even if a redirect the test provokes points elsewhere.
	// (Chromium never sends loopback through a proxy.)
	deadProxy := e2etest.FreePort(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		// As root, Chromium needs --no-sandbox. With chromedp's defaults
		// (--headless, --no-first-run, --disable-background-networking,
		// --disable-sync among them), these are the flags known to work on
		// this project's machines (root, no network): the background
		// networking ones keep Chromium from calling home.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
		chromedp.ProxyServer(fmt.Sprintf("http://127.0.0.1:%d", deadProxy)),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		// The tests' ports are random; none may be one Chromium refuses.
		chromedp.Flag("explicitly-allowed-ports", fmt.Sprintf("%d,%d", g.port, g.attackerPort)),
		chromedp.CombinedOutput(b.out),
		// No UserDataDir: chromedp makes a new empty one for each browser
		// and removes it (and kills Chromium's leftovers) when it ends.
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithErrorf(b.cdp.printf),
		chromedp.WithLogf(b.cdp.printf))
	b.ctx = ctx
	t.Cleanup(func() {
		b.mu.Lock()
		closeTabs := b.closeTabs
		b.mu.Unlock()
		for _, closeTab := range closeTabs {
			closeTab()
		}
		// Close the browser gracefully, then make sure the process is gone.
		if err := chromedp.Cancel(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Logf("closing chromium: %v", err)
		}
		cancel()
		cancelAlloc()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v\nchromium's output:\n%s", chromiumPath, err, tail(b.out.String(), 40))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Logf("chromium took %v to start", d.Round(time.Millisecond))
	}
	first := b.attach("tab1", ctx)
	t.Cleanup(func() {
		if t.Failed() {
			b.dump()
		}
	})
	return b, first
}

// newTab opens another tab of the same browser (same profile, same cookie
// jar), as a user who opens the site twice.
func (b *browser) newTab(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.mu.Lock()
	b.closeTabs = append(b.closeTabs, cancel)
	b.mu.Unlock()
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("opening %s: %v", name, err)
	}
	return b.attach(name, ctx)
}

// attach starts recording a tab's requests.
func (b *browser) attach(name string, ctx context.Context) *tab {
	b.t.Helper()
	tb := &tab{t: b.t, b: b, name: name, ctx: ctx, byID: map[network.RequestID]int{}, paused: make(chan *fetch.EventRequestPaused, 16)}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		b.t.Fatalf("%s: listening to its events: %v", name, err)
	}
	b.mu.Lock()
	b.tabs = append(b.tabs, tb)
	b.mu.Unlock()
	return tb
}

// cookies is the browser's whole cookie jar, HttpOnly cookies included,
// as the DevTools protocol shows it.
func (b *browser) cookies() []*network.Cookie {
	b.t.Helper()
	c, err := b.cookiesErr()
	if err != nil {
		b.t.Fatalf("reading the cookie jar: %v", err)
	}
	return c
}

func (b *browser) cookiesErr() ([]*network.Cookie, error) {
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.CallBrowser(ctx, storage.GetCookies, storage.GetCookiesParams{})
	return res.Cookies, err
}

// cookie is the jar's cookie of that name, or nil.
func (b *browser) cookie(name string) *network.Cookie {
	b.t.Helper()
	for _, c := range b.cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// wxauthCookies is the names of the gateway's cookies left in the jar.
func (b *browser) wxauthCookies() []string {
	b.t.Helper()
	var names []string
	for _, c := range b.cookies() {
		if strings.HasPrefix(c.Name, "wxauth_") {
			names = append(names, c.Name+" (Path="+c.Path+")")
		}
	}
	return names
}

// clearCookies empties the jar: the same browser as a new visitor.
func (b *browser) clearCookies() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, storage.ClearCookies, storage.ClearCookiesParams{}); err != nil {
		b.t.Fatalf("clearing cookies: %v", err)
	}
}

// waitCookieGone polls the jar until the cookie is gone (it expired),
// failing after limit.
func (b *browser) waitCookieGone(name string, limit time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(limit)
	for b.cookie(name) != nil {
		if time.Now().After(deadline) {
			b.t.Fatalf("the browser still holds %s %v later", name, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dump prints what a failure needs: every tab's URL and requests, the
// cookie jar, what reached the upstream, and the tails of the logs.
func (b *browser) dump() {
	t := b.t
	var s strings.Builder
	b.mu.Lock()
	tabs := slices.Clone(b.tabs)
	b.mu.Unlock()
	for _, tb := range tabs {
		loc, err := tb.locationErr()
		if err != nil {
			loc = "(" + err.Error() + ")"
		}
		fmt.Fprintf(&s, "%s is at %s; its requests:\n%s", tb.name, loc, tb.requestsSummary())
	}
	if cookies, err := b.cookiesErr(); err != nil {
		fmt.Fprintf(&s, "cookies: %v\n", err)
	} else {
		fmt.Fprintf(&s, "cookies:\n%s", cookiesSummary(cookies))
	}
	fmt.Fprintf(&s, "the upstream saw:\n%s", b.g.upstreamSummary())
	if out := chromiumNoise.ReplaceAllString(b.out.String(), ""); strings.TrimSpace(out) != "" {
		fmt.Fprintf(&s, "--- chromium's output:\n%s\n", tail(out, 20))
	}
	if e := b.cdp.String(); e != "" {
		fmt.Fprintf(&s, "--- chromedp:\n%s\n", tail(e, 20))
	}
	s.WriteString(b.g.logTails())
	t.Logf("after the failure:\n%s", s.String())
}

// chromiumNoise is what Chromium always prints on a machine without a
// desktop session (no D-Bus), which says nothing about a failure.
// Debian's /usr/bin/chromium launcher also trips on its own shared-memory
// check on some machines ("[: ...: unexpected operator"), harmlessly.
var chromiumNoise = regexp.MustCompile(`(?m)^.*(dbus|DBus|D-Bus|unexpected operator).*\n`)

func cookiesSummary(cookies []*network.Cookie) string {
	if len(cookies) == 0 {
		return "  (none)\n"
	}
	var s strings.Builder
	for _, c := range cookies {
		fmt.Fprintf(&s, "  %s\n", describeCookie(c))
	}
	return s.String()
}

// describeCookie shows a cookie's attributes and the start of its value.
func describeCookie(c *network.Cookie) string {
	expires := "session"
	if !c.Session {
		expires = "expires in " + time.Until(time.Unix(0, int64(c.Expires*float64(time.Second)))).Round(100*time.Millisecond).String()
	}
	return fmt.Sprintf("%s=%s Domain=%s Path=%s HttpOnly=%t Secure=%t SameSite=%s %s",
		c.Name, short(c.Value), c.Domain, c.Path, c.HTTPOnly, c.Secure, c.SameSite, expires)
}

// short shows enough of a token to tell two apart, not the whole of it.
func short(v string) string {
	if len(v) > 16 {
		return v[:12] + "..."
	}
	return v
}

// tab is one page of the browser, with every request it made.
type tab struct {
	t    *testing.T
	b    *browser
	name string
	ctx  context.Context

	// paused gets the requests the tab holds (fetch interception).
	paused chan *fetch.EventRequestPaused

	mu       sync.Mutex
	requests []*request
	byID     map[network.RequestID]int // the latest request of each id (a redirect keeps the id)
	// hops are the requests of each id in order (a redirect's hops share
	// it), and sent the cookies of its requestWillBeSentExtraInfo events
	// in order: the k-th event is the k-th hop's, whichever comes first.
	hops map[network.RequestID][]*request
	sent map[network.RequestID][]map[string]string
}

// request is one request as the browser made it: a redirect is a request
// of its own, with the status of its redirect answer.
type request struct {
	ID     network.RequestID
	Type   network.ResourceType
	Method string
	URL    string // with its fragment, as the browser holds it
	Status int64  // 0 until the answer arrived
	// WireStatus is the status on the wire, from the protocol's extra
	// info: the only one of a request that failed after its answer came
	// (a no-cors fetch whose answer the browser blocks, for one).
	WireStatus int64
	Location   string // of a redirect answer
	Failed     string // the network error, if it failed
	// Sent is the cookies the browser sent with it (name to value), from
	// the protocol's extra info; nil until that arrived.
	Sent map[string]string
}

func (r *request) String() string {
	status := strconv.FormatInt(r.Status, 10)
	switch {
	case r.Failed != "" && r.WireStatus != 0:
		status = fmt.Sprintf("%d on the wire, then failed: %s", r.WireStatus, r.Failed)
	case r.Failed != "":
		status = "failed: " + r.Failed
	case r.Status == 0:
		status = "no answer yet"
	}
	s := fmt.Sprintf("%s %s %s -> %s", r.Type, r.Method, r.URL, status)
	if r.Location != "" {
		s += " Location: " + r.Location
	}
	if len(r.Sent) > 0 {
		var parts []string
		for name, value := range r.Sent {
			parts = append(parts, name+"="+short(value))
		}
		slices.Sort(parts)
		s += " [Cookie: " + strings.Join(parts, "; ") + "]"
	}
	return s
}

// record is the tab's event listener. It runs in chromedp's read loop:
// it only files the events away.
func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		if e.RedirectResponse != nil {
			if r := tb.latest(e.RequestID); r != nil {
				r.Status = e.RedirectResponse.Status
				r.Location = headerValue(e.RedirectResponse.Headers, "Location")
			}
		}
		tb.byID[e.RequestID] = len(tb.requests)
		r := &request{ID: e.RequestID, Type: e.Type, Method: e.Request.Method, URL: e.Request.URL + e.Request.URLFragment}
		tb.requests = append(tb.requests, r)
		tb.pair(e.RequestID, r, nil)
	case *network.EventRequestWillBeSentExtraInfo:
		// Arrives before or after its requestWillBeSent; only the cookies
		// sent matter here (a redirect's hops each get their own).
		tb.pair(e.RequestID, nil, sentCookies(e.AssociatedCookies))
	case *network.EventResponseReceivedExtraInfo:
		if r := tb.latest(e.RequestID); r != nil {
			r.WireStatus = e.StatusCode
		}
	case *network.EventResponseReceived:
		if r := tb.latest(e.RequestID); r != nil {
			r.Status = e.Response.Status
		}
	case *network.EventLoadingFailed:
		if r := tb.latest(e.RequestID); r != nil {
			r.Failed = e.ErrorText
		}
	case *fetch.EventRequestPaused:
		// Only while a test holds requests (holdRequests); never blocks.
		select {
		case tb.paused <- e:
		default:
		}
	}
}

// pair files a hop (r) or the cookies of a hop (sent) of request id, and
// gives each hop the cookies of the extra-info event of the same rank.
func (tb *tab) pair(id network.RequestID, r *request, sent map[string]string) {
	if tb.hops == nil {
		tb.hops, tb.sent = map[network.RequestID][]*request{}, map[network.RequestID][]map[string]string{}
	}
	if r != nil {
		tb.hops[id] = append(tb.hops[id], r)
	} else {
		tb.sent[id] = append(tb.sent[id], sent)
	}
	for i, hop := range tb.hops[id] {
		if hop.Sent == nil && i < len(tb.sent[id]) {
			hop.Sent = tb.sent[id][i]
		}
	}
}

func (tb *tab) latest(id network.RequestID) *request {
	if i, ok := tb.byID[id]; ok {
		return tb.requests[i]
	}
	return nil
}

func headerValue(h network.Headers, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// sentCookies keeps the cookies that went with the request (the others
// carry the reasons they were not sent).
func sentCookies(cs []*network.AssociatedCookie) map[string]string {
	sent := map[string]string{}
	for _, c := range cs {
		if len(c.BlockedReasons) == 0 && c.Cookie != nil {
			sent[c.Cookie.Name] = c.Cookie.Value
		}
	}
	return sent
}

// mark is a point in the tab's request list: what came after it is what
// one step of a test caused.
func (tb *tab) mark() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.requests)
}

// since returns copies of the requests made after mark.
func (tb *tab) since(mark int) []request {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	out := make([]request, 0, len(tb.requests)-mark)
	for _, r := range tb.requests[mark:] {
		c := *r
		c.Sent = maps.Clone(r.Sent)
		out = append(out, c)
	}
	return out
}

func (tb *tab) requestsSummary() string {
	reqs := tb.since(0)
	if len(reqs) == 0 {
		return "  (none)\n"
	}
	var s strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&s, "  %s\n", r.String())
	}
	return s.String()
}

// documents keeps the page loads (top-level documents) of reqs: a
// navigation's redirect chain, hop by hop.
func documents(reqs []request) []request {
	var out []request
	for _, r := range reqs {
		if r.Type == network.ResourceTypeDocument {
			out = append(out, r)
		}
	}
	return out
}

func chainString(reqs []request) string {
	var s strings.Builder
	for _, r := range reqs {
		fmt.Fprintf(&s, "\n    %s", r.String())
	}
	return s.String()
}

// navigation is what one page load did.
type navigation struct {
	Chain []request // the document requests, redirects included, in order
	Final *url.URL  // where the page ended (location.href)
	Err   error     // the browser's load error, if any (net::ERR_...)
}

// paths is the chain as paths only, for failure messages and checks.
func (n navigation) paths() []string {
	var out []string
	for _, r := range n.Chain {
		if u, err := url.Parse(r.URL); err == nil {
			out = append(out, u.Path)
		} else {
			out = append(out, r.URL)
		}
	}
	return out
}

// passedThrough reports whether a hop of the chain had this path prefix.
func (n navigation) passedThrough(prefix string) bool {
	return slices.ContainsFunc(n.paths(), func(p string) bool { return strings.HasPrefix(p, prefix) })
}

// visit loads pathOrURL (a path is on the gateway) and waits until the
// page has loaded, after every redirect; it fails the test on a load error.
func (tb *tab) visit(pathOrURL string) navigation {
	tb.t.Helper()
	nav := tb.tryVisit(pathOrURL)
	if nav.Err != nil {
		tb.t.Fatalf("%s: loading %s: %v; chain:%s", tb.name, pathOrURL, nav.Err, chainString(nav.Chain))
	}
	return nav
}

// tryVisit is visit that hands back a load error instead of failing.
func (tb *tab) tryVisit(pathOrURL string) navigation {
	tb.t.Helper()
	mark := tb.mark()
	return tb.finishVisit(mark, pathOrURL, tb.navigate(pathOrURL))
}

// navigate loads pathOrURL and waits for the load. It does not touch the
// test, so it may run on a goroutine of its own (finishVisit may not).
func (tb *tab) navigate(pathOrURL string) error {
	target := pathOrURL
	if strings.HasPrefix(target, "/") {
		target = tb.b.g.URL + target
	}
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(target))
}

// finishVisit collects what the load that navigate did since mark ended
// with; it fails the test if the page never loaded.
func (tb *tab) finishVisit(mark int, pathOrURL string, err error) navigation {
	tb.t.Helper()
	if errors.Is(err, context.DeadlineExceeded) {
		tb.t.Fatalf("%s: loading %s: no load after %v; requests:%s", tb.name, pathOrURL, browserTimeout, chainString(tb.since(mark)))
	}
	nav := navigation{Err: err}
	nav.Final = tb.location()
	nav.Chain = tb.settledDocuments(mark)
	return nav
}

// settledDocuments waits until every page load since mark has its answer
// or its error, and returns them. A failed navigation's answer comes back
// before the network events of its last hops, so these may still be on
// their way.
func (tb *tab) settledDocuments(mark int) []request {
	deadline := time.Now().Add(5 * time.Second)
	for {
		docs := documents(tb.since(mark))
		settled := len(docs) > 0
		for _, r := range docs {
			settled = settled && (r.Status != 0 || r.Failed != "")
		}
		if settled || time.Now().After(deadline) {
			return docs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// location is where the tab is now, fragment included.
func (tb *tab) location() *url.URL {
	tb.t.Helper()
	loc, err := tb.locationErr()
	if err != nil {
		tb.t.Fatalf("%s: reading location.href: %v", tb.name, err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tb.t.Fatalf("%s: location %q: %v", tb.name, loc, err)
	}
	return u
}

func (tb *tab) locationErr() (string, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	// The document's URL; location.href is the same but for an error page.
	return chromedp.Run(ctx, chromedp.Location())
}

// text is the loaded page's text (a JSON answer, as the browser shows it).
func (tb *tab) text() string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		tb.t.Fatalf("%s: reading the page: %v", tb.name, err)
	}
	return s
}

// upstreamEcho is the upstream's answer (e2etest.Upstream): the path and
// headers it got.
type upstreamEcho struct {
	Path    string              `json:"path"`
	Headers map[string][]string `json:"headers"`
}

// echo parses the page as the upstream's answer, failing if it is not.
func (tb *tab) echo() upstreamEcho {
	tb.t.Helper()
	text := tb.text()
	var e upstreamEcho
	if err := json.Unmarshal([]byte(text), &e); err != nil || e.Path == "" {
		tb.t.Fatalf("%s: the page is not the upstream's answer: %.300q", tb.name, text)
	}
	return e
}

// fetchResult is what a page's fetch() got.
type fetchResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"` // a network error (fetch rejected)
}

// fetchOptions is a fetch() call's body: JSON, or a FormData (multipart)
// of fields.
type fetchOptions struct {
	JSON any               `json:"json,omitempty"`
	Form map[string]string `json:"form,omitempty"`
}

// fetchJS runs one fetch() with the page's own credentials (cookies go to
// its own origin, as `credentials: "same-origin"`, fetch's default, does).
const fetchJS = `(async (a) => {
	const init = {method: a.method, credentials: "same-origin", headers: {}};
	if (a.json !== undefined) {
		init.headers["Content-Type"] = "application/json";
		init.body = JSON.stringify(a.json);
	} else if (a.form !== undefined) {
		init.body = new FormData();
		for (const [k, v] of Object.entries(a.form)) init.body.append(k, v);
	}
	try {
		const r = await fetch(a.url, init);
		return {status: r.status, body: await r.text(), error: ""};
	} catch (e) {
		return {status: 0, body: "", error: String(e)};
	}
})(%s)`

// fetch runs fetch(path) in the tab's page, as the page's own script
// would, and returns what it got.
func (tb *tab) fetch(method, path string, opts fetchOptions) fetchResult {
	tb.t.Helper()
	args := struct {
		Method string `json:"method"`
		URL    string `json:"url"`
		fetchOptions
	}{method, path, opts}
	a, err := json.Marshal(args)
	if err != nil {
		tb.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Run(ctx, chromedp.Evaluate[fetchResult](fmt.Sprintf(fetchJS, a), chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: fetch %s %s: %v", tb.name, method, path, err)
	}
	if res.Error != "" {
		tb.t.Fatalf("%s: fetch %s %s failed: %s", tb.name, method, path, res.Error)
	}
	return res
}

// eval runs a script in the page.
func (tb *tab) eval(js string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](js)); err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, js, err)
	}
}

// answered is the status the request was answered with, whether or not
// the browser then let the page have the answer.
func (r request) answered() int64 {
	if r.Status != 0 {
		return r.Status
	}
	return r.WireStatus
}

// waitRequest polls the tab's requests after mark until one to this method
// and URL (without the query) has its answer or failed, and returns it
// with the cookies it was sent with, when the browser tells them within
// a second more.
func (tb *tab) waitRequest(mark int, method, rawURL string) request {
	tb.t.Helper()
	deadline := time.Now().Add(browserTimeout)
	var done time.Time
	for {
		for _, r := range tb.since(mark) {
			if r.Method != method || strings.SplitN(r.URL, "?", 2)[0] != rawURL || (r.Status == 0 && r.Failed == "") {
				continue
			}
			if done.IsZero() {
				done = time.Now()
			}
			if r.Sent != nil && (r.Failed == "" || r.WireStatus != 0) || time.Since(done) > time.Second {
				return r
			}
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: no answer to %s %s after %v; requests:%s", tb.name, method, rawURL, browserTimeout, chainString(tb.since(mark)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// responseBody is the body of a request's answer, if the browser kept it.
func (tb *tab) responseBody(r request) string {
	ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: r.ID})
	if err != nil {
		return "(body not available: " + err.Error() + ")"
	}
	return redactTokens(string(res.Body))
}

// tokenField is a token in a JSON answer (a session, a profile update).
var tokenField = regexp.MustCompile(`"(access_token|refresh_token)":"[^"]{12}[^"]*"`)

// redactTokens keeps the start of each token only, in what a failure prints.
func redactTokens(body string) string {
	return tokenField.ReplaceAllStringFunc(body, func(m string) string {
		name, value, _ := strings.Cut(m, ":")
		return name + ":" + strings.TrimSuffix(value[:13], `"`) + `..."`
	})
}

// holdRequests makes each tab hold its requests to URLs matching pattern
// (a DevTools pattern: * is any run of characters) and returns a func that
// waits until every tab holds one, then lets them all go at once: the
// tabs' requests start together, as two tabs a user refreshes at the
// same moment do, however the tabs' loads were scheduled. Requests that
// match later go at once. The holds end with the test.
func holdRequests(t *testing.T, tabs []*tab, pattern string) (releaseAll func()) {
	t.Helper()
	type arrival struct {
		tab *tab
		url string
	}
	arrived := make(chan arrival, 16*len(tabs))
	release := make(chan struct{})
	done := make(chan struct{})
	errs := &lockedBuffer{}
	var wg sync.WaitGroup
	for _, tb := range tabs {
		ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
		_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: pattern, RequestStage: fetch.RequestStageRequest}}})
		cancel()
		if err != nil {
			t.Fatalf("%s: holding requests to %s: %v", tb.name, pattern, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case ev := <-tb.paused:
					arrived <- arrival{tb, ev.Request.URL}
					select {
					case <-release:
					case <-done:
						return
					}
					ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
					if _, err := chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID}); err != nil {
						errs.printf("%s: letting %s go: %v", tb.name, ev.Request.URL, err)
					}
					cancel()
				case <-done:
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		close(done)
		wg.Wait()
		if e := errs.String(); e != "" {
			t.Error(e)
		}
		for _, tb := range tabs {
			ctx, cancel := context.WithTimeout(tb.ctx, browserTimeout)
			_, _ = chromedp.Call(ctx, fetch.Disable, cdp.Empty{})
			cancel()
		}
	})
	return func() {
		t.Helper()
		holding := map[*tab]string{}
		deadline := time.After(browserTimeout)
		for len(holding) < len(tabs) {
			select {
			case a := <-arrived:
				if _, ok := holding[a.tab]; !ok {
					holding[a.tab] = a.url
				}
			case <-deadline:
				t.Fatalf("after %v only %d of %d tabs made a request to %s: %v", browserTimeout, len(holding), len(tabs), pattern, holding)
			}
		}
		close(release)
	}
}

// lockedBuffer collects text from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
