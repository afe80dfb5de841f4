package scanlogin

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

var (
	mini  = App{App: platform.App{AppID: "wxscanmini00001", Kind: platform.WeChat}, Page: "pages/scan/index", EnvVersion: "trial"}
	other = App{App: platform.App{AppID: "wxscanmini00002", Kind: platform.WeChat}}
)

// fakeCodes makes "images" that name their scene, and counts them.
type fakeCodes struct {
	mu   sync.Mutex
	reqs []platform.CodeRequest
	err  error
}

func (c *fakeCodes) UnlimitedCode(_ context.Context, app platform.App, req platform.CodeRequest) (*platform.Image, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reqs = append(c.reqs, req)
	if c.err != nil {
		return nil, c.err
	}
	return &platform.Image{ContentType: "image/png", Data: []byte("\x89PNG\r\n\x1a\n" + app.AppID + "|" + req.Scene)}, nil
}

type noExchange struct{}

func (noExchange) Code2Session(context.Context, platform.App, string) (*platform.Session, error) {
	return nil, errors.New("not used")
}

// node is one gateway node's flow on a shared storage folder.
func node(t *testing.T, dir string, codes Codes, now func() time.Time) *Flow {
	t.Helper()
	records := store.NewStore(&certmagic.FileStorage{Path: dir})
	codec, err := token.NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-scan-test"))
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(appid string) (platform.App, bool) {
		for _, a := range []App{mini, other} {
			if a.AppID == appid {
				return a.App, true
			}
		}
		return platform.App{}, false
	}
	logins := &login.Service{Exchanger: noExchange{}, Store: records, Codec: codec, AccessTTL: time.Hour,
		RefreshTTL: 24 * time.Hour, Apps: lookup}
	return &Flow{Apps: []App{mini, other}, Lookup: lookup, Store: records, Codes: codes, Logins: logins, Now: now}
}

func fast(t *testing.T, poll, hold time.Duration) {
	oldPoll, oldHold := pollInterval, holdFor
	pollInterval, holdFor = poll, hold
	t.Cleanup(func() {
		pollInterval, holdFor = oldPoll, oldHold
		if n := watched(); n != 0 {
			t.Errorf("%d tickets still watched after the test", n)
		}
	})
}

func user(app App, openid string) identity.Identity {
	return identity.Identity{AppID: app.AppID, OpenID: openid, UnionID: "u-" + openid}
}

func begin(t *testing.T, f *Flow, app App, browser string) string {
	t.Helper()
	st, err := f.Begin(context.Background(), app, browser, "/account")
	if err != nil {
		t.Fatal(err)
	}
	if !ValidToken(st.Ticket) || !platform.ValidScene(st.Ticket) {
		t.Fatalf("ticket %q is not a valid scene", st.Ticket)
	}
	return st.Ticket
}

func mustRefuse(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, ErrTicket) || !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v (an ErrTicket)", err, want)
	}
}

// The whole flow on two nodes: the browser waits on a, the phone scans and
// confirms on b; the wait follows each step and ends with one session of
// the user who confirmed, for the page the ticket was made for.
func TestScanFlowAcrossNodes(t *testing.T) {
	fast(t, 50*time.Millisecond, 5*time.Second)
	dir := t.TempDir()
	codes := &fakeCodes{}
	a, b := node(t, dir, codes, nil), node(t, dir, codes, nil)
	ctx := context.Background()
	key, _ := NewBrowserKey()
	ticket := begin(t, a, mini, key)

	if len(codes.reqs) != 1 || codes.reqs[0] != (platform.CodeRequest{Scene: ticket, Page: mini.Page, EnvVersion: "trial"}) {
		t.Fatalf("code requests %+v, want one for the ticket with the app's page and env_version", codes.reqs)
	}
	for _, f := range []*Flow{a, b} {
		img, err := f.Image(ctx, ticket)
		if err != nil || string(img.Data) != "\x89PNG\r\n\x1a\n"+mini.AppID+"|"+ticket || img.ContentType != "image/png" {
			t.Fatalf("image: %v %q", err, img)
		}
	}
	if len(codes.reqs) != 1 {
		t.Fatalf("the image was fetched %d times, want once per ticket", len(codes.reqs))
	}

	// Pending seen: the wait holds until b says scanned.
	done := make(chan Waited, 1)
	go func() {
		w, err := a.Wait(ctx, ticket, key, Pending, nil)
		if err != nil {
			t.Error(err)
		}
		done <- w
	}()
	time.Sleep(100 * time.Millisecond)
	select {
	case w := <-done:
		t.Fatalf("the wait answered %q before anything happened", w.Status)
	default:
	}
	if err := b.Step(ctx, ticket, StepScanned, user(mini, "o-amy")); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-done:
		if w.Status != Scanned || w.Session != nil {
			t.Fatalf("wait = %+v, want scanned", w)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the wait on a did not see the scan on b")
	}

	if err := b.Step(ctx, ticket, StepConfirm, user(mini, "o-amy")); err != nil {
		t.Fatal(err)
	}
	w, err := a.Wait(ctx, ticket, key, Scanned, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.Status != Confirmed || w.Session == nil || w.Session.User.OpenID != "o-amy" || w.Session.Session.AppID != mini.AppID ||
		w.Next != "/account" || w.App.AppID != mini.AppID {
		t.Fatalf("wait = %+v, want confirmed with amy's session for /account", w)
	}
	if w.Session.Session.Source != "wechat-miniprogram" {
		t.Errorf("session source %q", w.Session.Session.Source)
	}

	// Used: once.
	_, err = b.Wait(ctx, ticket, key, Pending, nil)
	mustRefuse(t, err, errUsed)
	mustRefuse(t, b.Step(ctx, ticket, StepConfirm, user(mini, "o-amy")), errUsed)
	_, err = a.Image(ctx, ticket)
	mustRefuse(t, err, errUsed)
}

// Two waits of the same browser at once on two nodes: one session, the
// other wait is refused.
func TestConfirmedTicketGivesOneSession(t *testing.T) {
	fast(t, 20*time.Millisecond, 5*time.Second)
	dir := t.TempDir()
	a, b := node(t, dir, &fakeCodes{}, nil), node(t, dir, &fakeCodes{}, nil)
	ctx := context.Background()
	key, _ := NewBrowserKey()
	ticket := begin(t, a, mini, key)
	var sessions, refused atomic.Int32
	var wg sync.WaitGroup
	for _, f := range []*Flow{a, b, a, b} {
		wg.Go(func() {
			w, err := f.Wait(ctx, ticket, key, Pending, nil)
			switch {
			case err == nil && w.Session != nil:
				sessions.Add(1)
			case errors.Is(err, errUsed):
				refused.Add(1)
			default:
				t.Errorf("wait: %+v %v", w, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := b.Step(ctx, ticket, StepConfirm, user(mini, "o-bea")); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if sessions.Load() != 1 || refused.Load() != 3 {
		t.Fatalf("%d sessions and %d refusals, want 1 and 3", sessions.Load(), refused.Load())
	}
}

// A step on this node wakes the wait at once, without waiting for the
// next read of storage.
func TestStepOnThisNodeWakesTheWait(t *testing.T) {
	fast(t, time.Hour, 10*time.Second)
	f := node(t, t.TempDir(), &fakeCodes{}, nil)
	ctx := context.Background()
	key, _ := NewBrowserKey()
	ticket := begin(t, f, mini, key)
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := f.Step(ctx, ticket, StepCancel, user(mini, "o-cat")); err != nil {
			t.Error(err)
		}
	}()
	start := time.Now()
	w, err := f.Wait(ctx, ticket, key, Pending, nil)
	if err != nil || w.Status != Canceled {
		t.Fatalf("wait = %+v %v, want canceled", w, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the wait took %v", d)
	}
	// Canceled is final: answered at once even when seen.
	if w, err := f.Wait(ctx, ticket, key, Canceled, nil); err != nil || w.Status != Canceled {
		t.Fatalf("wait after cancel = %+v %v", w, err)
	}
	mustRefuse(t, f.Step(ctx, ticket, StepConfirm, user(mini, "o-cat")), errCanceled)
	_, err = f.Image(ctx, ticket)
	mustRefuse(t, err, errCanceled)
}

// A wait holds at most holdFor, ends at once on shutdown and when the
// browser goes away, and answers what the browser has seen.
func TestWaitEnds(t *testing.T) {
	fast(t, 20*time.Millisecond, 300*time.Millisecond)
	f := node(t, t.TempDir(), &fakeCodes{}, nil)
	key, _ := NewBrowserKey()
	ticket := begin(t, f, mini, key)

	start := time.Now()
	w, err := f.Wait(context.Background(), ticket, key, Pending, nil)
	if err != nil || w.Status != Pending || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("held wait = %+v %v after %v", w, err, time.Since(start))
	}

	holdFor = time.Hour
	stop := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(stop) })
	start = time.Now()
	if w, err := f.Wait(context.Background(), ticket, key, Pending, stop); err != nil || w.Status != Pending || time.Since(start) > 2*time.Second {
		t.Fatalf("wait at shutdown = %+v %v after %v", w, err, time.Since(start))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Wait(ctx, ticket, key, Pending, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait of a browser gone: %v", err)
	}
	// A status the browser has not seen is answered at once.
	if w, err := f.Wait(context.Background(), ticket, key, Scanned, nil); err != nil || w.Status != Pending {
		t.Fatalf("wait with seen=scanned = %+v %v", w, err)
	}
}

// The refusals: another browser, another app, another user, twice, late.
func TestTicketRefusals(t *testing.T) {
	fast(t, 20*time.Millisecond, time.Second)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	f := node(t, t.TempDir(), &fakeCodes{}, now)
	ctx := context.Background()
	key, _ := NewBrowserKey()
	otherKey, _ := NewBrowserKey()
	ticket := begin(t, f, mini, key)

	_, err := f.Wait(ctx, ticket, otherKey, Pending, nil)
	mustRefuse(t, err, errBrowser)
	_, err = f.Wait(ctx, ticket, "", Pending, nil)
	mustRefuse(t, err, errBrowser)
	mustRefuse(t, f.Step(ctx, ticket, StepConfirm, user(other, "o-dan")), errOtherApp)
	mustRefuse(t, f.Step(ctx, "unknown0unknown0unknown0unknown0", StepConfirm, user(mini, "o-dan")), errUnknown)
	mustRefuse(t, f.Step(ctx, "short", StepConfirm, user(mini, "o-dan")), errUnknown)

	if err := f.Step(ctx, ticket, StepScanned, user(mini, "o-dan")); err != nil {
		t.Fatal(err)
	}
	if err := f.Step(ctx, ticket, StepScanned, user(mini, "o-dan")); err != nil {
		t.Fatalf("scanned again by the same user: %v", err)
	}
	mustRefuse(t, f.Step(ctx, ticket, StepConfirm, user(mini, "o-eve")), errOtherUser)
	mustRefuse(t, f.Step(ctx, ticket, StepCancel, user(mini, "o-eve")), errOtherUser)
	if err := f.Step(ctx, ticket, StepConfirm, user(mini, "o-dan")); err != nil {
		t.Fatal(err)
	}
	mustRefuse(t, f.Step(ctx, ticket, StepConfirm, user(mini, "o-dan")), errConfirmed)
	mustRefuse(t, f.Step(ctx, ticket, StepCancel, user(mini, "o-dan")), errConfirmed)

	// Expiry: past its life a ticket nobody confirmed is expired, and
	// once long gone, unknown.
	late := begin(t, f, mini, key)
	clock.Add(int64(TicketLifetime))
	if w, err := f.Wait(ctx, late, key, Pending, nil); err != nil || w.Status != Expired {
		t.Fatalf("wait of an expired ticket = %+v %v", w, err)
	}
	mustRefuse(t, f.Step(ctx, late, StepScanned, user(mini, "o-dan")), errExpired)
	_, err = f.Image(ctx, late)
	mustRefuse(t, err, errExpired)
	clock.Add(int64(2 * time.Hour))
	_, err = f.Wait(ctx, late, key, Pending, nil)
	mustRefuse(t, err, errUnknown)
}

// A platform failure makes no ticket.
func TestBeginFailsWithThePlatform(t *testing.T) {
	codes := &fakeCodes{err: &platform.Error{Code: platform.Unavailable, API: "getwxacodeunlimit", Message: "down"}}
	f := node(t, t.TempDir(), codes, nil)
	key, _ := NewBrowserKey()
	if _, err := f.Begin(context.Background(), mini, key, "/"); platform.AsError(err) == nil {
		t.Fatalf("Begin: %v, want the platform's error", err)
	}
	if _, err := f.App("wxnotscan"); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("App: %v", err)
	}
	if app, err := f.App(""); err != nil || app.AppID != mini.AppID {
		t.Fatalf("default app: %v %v", app, err)
	}
	if _, err := (&Flow{}).App(""); !errors.Is(err, ErrNoScanApp) {
		t.Fatalf("no scan app: %v", err)
	}
}
