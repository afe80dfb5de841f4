package login

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

var testApp = platform.App{AppID: "wx1234567890", Secret: "s3cret", Kind: platform.WeChat}

// fakeClock is a settable clock for Service.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeExchanger stands in for the platform. By default each code maps to the
// openid "o-"+code and a session key that changes with every call, so a test
// can tell which call produced a stored key.
type fakeExchanger struct {
	calls     atomic.Int32
	mu        sync.Mutex
	perCode   map[string]int
	errs      []error // scripted: call i returns errs[i] when non-nil
	openID    string  // when set, every code maps to this openid
	started   chan struct{}
	release   chan struct{}             // when set, calls block until closed (or ctx ends)
	before    func(ctx context.Context) // runs at the start of each call
	sawCancel atomic.Bool               // ctx was already done when the call returned
}

func (f *fakeExchanger) Code2Session(ctx context.Context, app platform.App, code string) (*platform.Session, error) {
	n := int(f.calls.Add(1)) - 1
	f.mu.Lock()
	if f.perCode == nil {
		f.perCode = make(map[string]int)
	}
	f.perCode[code]++
	var err error
	if n < len(f.errs) {
		err = f.errs[n]
	}
	f.mu.Unlock()
	if f.before != nil {
		f.before(ctx)
	}
	if f.started != nil {
		select {
		case f.started <- struct{}{}:
		default:
		}
	}
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			f.sawCancel.Store(true)
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	openID := f.openID
	if openID == "" {
		openID = "o-" + code
	}
	return &platform.Session{OpenID: openID, SessionKey: fmt.Sprintf("key-%d", n)}, nil
}

func (f *fakeExchanger) callsFor(code string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perCode[code]
}

func newCodec(t testing.TB) *token.Codec {
	t.Helper()
	c, err := token.NewHS256Codec([]byte("0123456789abcdef0123456789abcdef-test-key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newService builds a Service on the storage directory dir (a fresh Store
// value each time, as a second node sharing the backend would have).
func newService(t testing.TB, dir string, ex Exchanger, clock *fakeClock) *Service {
	t.Helper()
	return &Service{
		Exchanger:  ex,
		Store:      store.NewStore(&certmagic.FileStorage{Path: dir}),
		Codec:      newCodec(t),
		AccessTTL:  15 * time.Minute,
		RefreshTTL: 30 * 24 * time.Hour,
		Now:        clock.Now,
	}
}

func invalidCodeErr() *platform.Error {
	return &platform.Error{Code: platform.InvalidCode, API: "code2session", Errcode: 40163,
		Message: "the login code was already used or has expired"}
}

func TestLoginIssuesVerifiableTokens(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	for _, app := range []platform.App{testApp, {AppID: "qq123", Kind: platform.QQ}} {
		ex := &fakeExchanger{}
		s := newService(t, t.TempDir(), ex, clock)
		res, err := s.Login(ctx, app, "code-1")
		if err != nil {
			t.Fatalf("Login(%s): %v", app.Kind, err)
		}
		id, exp, err := s.Codec.Verify(res.AccessToken, clock.Now())
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		want := identity.Identity{SessionID: res.Session.ID, AppID: app.AppID, OpenID: "o-code-1", Source: app.Kind.Source()}
		if id != want {
			t.Errorf("token identity = %+v, want %+v", id, want)
		}
		if want.Source == "" {
			t.Fatalf("test setup: Kind %q has no source", app.Kind)
		}
		if !exp.Equal(res.AccessExpires) || !exp.Equal(clock.Now().Add(s.AccessTTL)) {
			t.Errorf("expires = %v, result says %v, want now+AccessTTL", exp, res.AccessExpires)
		}

		stored, err := s.Store.LoadSession(ctx, res.Session.ID)
		if err != nil {
			t.Fatalf("LoadSession: %v", err)
		}
		if stored.RefreshHash != token.HashRefreshToken(res.RefreshToken) {
			t.Errorf("stored RefreshHash does not match the refresh token handed out")
		}
		if stored.RefreshHash == res.RefreshToken || res.RefreshToken == "" {
			t.Errorf("refresh token stored in plain or empty")
		}
		if stored.OpenID != "o-code-1" || stored.AppID != app.AppID || stored.Source != app.Kind.Source() {
			t.Errorf("stored session = %+v", stored)
		}
		if !stored.RefreshExpires.Equal(clock.Now().Add(s.RefreshTTL)) {
			t.Errorf("RefreshExpires = %v, want now+RefreshTTL", stored.RefreshExpires)
		}
		u, err := s.Store.LoadUser(ctx, app.AppID, "o-code-1")
		if err != nil {
			t.Fatalf("LoadUser: %v", err)
		}
		if u.SessionKey != "key-0" || !u.SessionKeyUpdated.Equal(clock.Now()) {
			t.Errorf("stored user = %+v, want session key key-0 updated now", u)
		}
		if res.User == nil || res.User.OpenID != "o-code-1" {
			t.Errorf("Result.User = %v", res.User)
		}
	}
}

// Twenty clients posting one code at once: the platform is asked once (a
// second exchange would get 40163), and each gets a session of its own.
func TestConcurrentLoginsOneExchange(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	release := make(chan struct{})
	ex := &fakeExchanger{release: release, started: make(chan struct{}, 1)}
	s := newService(t, t.TempDir(), ex, clock)

	const n = 20
	results := make([]*Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = s.Login(ctx, testApp, "code-X")
		}(i)
	}
	// Hold the exchange open a little so the others pile up behind it.
	<-ex.started
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()

	if c := ex.calls.Load(); c != 1 {
		t.Errorf("exchanger called %d times, want 1", c)
	}
	ids := make(map[string]bool)
	refresh := make(map[string]bool)
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("Login %d: %v", i, errs[i])
		}
		if results[i].User.OpenID != "o-code-X" {
			t.Errorf("Login %d openid = %q", i, results[i].User.OpenID)
		}
		ids[results[i].Session.ID] = true
		refresh[results[i].RefreshToken] = true
	}
	if len(ids) != n || len(refresh) != n {
		t.Errorf("got %d distinct session ids and %d refresh tokens, want %d each", len(ids), len(refresh), n)
	}
}

// A repeat of a code within its lifetime is answered from memory/storage;
// at CodeLifetime the code is dead and the platform is asked again.
func TestRepeatWithinAndAfterCodeLifetime(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	ex := &fakeExchanger{}
	s := newService(t, t.TempDir(), ex, clock)

	first, err := s.Login(ctx, testApp, "code-R")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(CodeLifetime - time.Second)
	second, err := s.Login(ctx, testApp, "code-R")
	if err != nil {
		t.Fatal(err)
	}
	if c := ex.calls.Load(); c != 1 {
		t.Errorf("repeat within CodeLifetime: exchanger called %d times, want 1", c)
	}
	if second.User.OpenID != first.User.OpenID || second.Session.ID == first.Session.ID {
		t.Errorf("repeat: openid %q vs %q, session %q vs %q; want same user, new session",
			second.User.OpenID, first.User.OpenID, second.Session.ID, first.Session.ID)
	}

	clock.Advance(time.Second) // exactly CodeLifetime after the exchange
	if _, err := s.Login(ctx, testApp, "code-R"); err != nil {
		t.Fatal(err)
	}
	if c := ex.calls.Load(); c != 2 {
		t.Errorf("repeat at CodeLifetime: exchanger called %d times, want 2", c)
	}
}

// A failure is not remembered: the next post of the code asks again, and
// the error reaches the caller as the exchanger returned it.
func TestFailedExchangeNotRemembered(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	busy := &platform.Error{Code: platform.Unavailable, API: "code2session", Errcode: -1, Message: "busy"}
	ex := &fakeExchanger{errs: []error{busy}}
	s := newService(t, t.TempDir(), ex, clock)

	res, err := s.Login(ctx, testApp, "code-F")
	if err == nil {
		t.Fatalf("Login succeeded with %+v, want the busy error", res)
	}
	if err != error(busy) {
		t.Errorf("err = %#v, want the exchanger's error unchanged", err)
	}
	if pe := platform.AsError(err); pe == nil || pe.Code != platform.Unavailable || pe.Errcode != -1 {
		t.Errorf("platform.AsError(err) = %+v", pe)
	}
	if _, lerr := s.Store.LoadCode(ctx, testApp.AppID, "code-F", clock.Now()); !errors.Is(lerr, store.ErrNotFound) {
		t.Errorf("a failed exchange left a code record: %v", lerr)
	}

	res, err = s.Login(ctx, testApp, "code-F")
	if err != nil {
		t.Fatalf("second Login: %v", err)
	}
	if c := ex.calls.Load(); c != 2 {
		t.Errorf("exchanger called %d times, want 2 (failure must not be cached)", c)
	}
	if res.User.OpenID != "o-code-F" {
		t.Errorf("openid = %q", res.User.OpenID)
	}
}

func TestExchangerErrorsReachCallerUnchanged(t *testing.T) {
	ctx := context.Background()
	for _, want := range []*platform.Error{
		invalidCodeErr(),
		{Code: platform.InvalidCode, API: "code2session", Errcode: 40029, Message: "invalid"},
		{Code: platform.LoginBlocked, API: "code2session", Errcode: 40226, Message: "blocked"},
		{Code: platform.RateLimited, API: "code2session", Errcode: 45011, RetryAfter: time.Minute, Message: "slow down"},
	} {
		ex := &fakeExchanger{errs: []error{want}}
		s := newService(t, t.TempDir(), ex, newFakeClock())
		_, err := s.Login(ctx, testApp, "code-E")
		pe := platform.AsError(err)
		if pe != want {
			t.Errorf("errcode %d: AsError(err) = %+v, want the same *platform.Error", want.Errcode, pe)
		}
	}
	// A non-platform error (say, a wrapped transport error) also passes through.
	sentinel := errors.New("dial tcp: refused")
	ex := &fakeExchanger{errs: []error{fmt.Errorf("wrapped: %w", sentinel)}}
	s := newService(t, t.TempDir(), ex, newFakeClock())
	if _, err := s.Login(ctx, testApp, "code-E"); !errors.Is(err, sentinel) {
		t.Errorf("err = %v, want it to wrap the sentinel", err)
	}
}

// Two nodes get the same code at the same instant (a client retrying
// against a load balancer): one asks the platform, the other waits on the
// code's claim in storage and logs the same user in.
func TestSameCodeOnTwoNodesOneExchange(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	ex := &fakeExchanger{started: make(chan struct{}, 1), release: make(chan struct{})}
	nodes := []*Service{newService(t, dir, ex, clock), newService(t, dir, ex, clock)}
	results := make([]*Result, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { results[i], errs[i] = n.Login(ctx, testApp, "code-X") })
	}
	<-ex.started
	time.Sleep(50 * time.Millisecond) // the other node reaches the claim meanwhile
	close(ex.release)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := ex.callsFor("code-X"); got != 1 {
		t.Errorf("the platform was asked %d times for one code", got)
	}
	if results[0].User.OpenID != results[1].User.OpenID || results[0].User.OpenID != "o-code-X" {
		t.Errorf("users %s and %s, want the code's on both", results[0].User.OpenID, results[1].User.OpenID)
	}
	if results[0].Session.ID == results[1].Session.ID {
		t.Error("the two nodes handed out the same session")
	}
}

// A node of the version before code claims exchanged the code while this
// one's call was on the wire: the platform answers 40163, and this node
// finds the other's code record and logs the same user in.
func TestCrossNode40163UsesOtherNodesRecord(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	older := store.NewStore(&certmagic.FileStorage{Path: dir})
	ex := &fakeExchanger{errs: []error{invalidCodeErr()}}
	ex.before = func(context.Context) {
		rec := &store.CodeRecord{AppID: testApp.AppID, OpenID: "o-older", Expires: clock.Now().Add(CodeLifetime)}
		if err := older.SaveCode(ctx, "code-X", rec, clock.Now()); err != nil {
			t.Error(err)
		}
	}
	res, err := newService(t, dir, ex, clock).Login(ctx, testApp, "code-X")
	if err != nil {
		t.Fatalf("Login after 40163: %v", err)
	}
	if res.User.OpenID != "o-older" {
		t.Errorf("user = %s, want the other node's", res.User.OpenID)
	}
}

// Without another node's record, 40163 is what the caller gets.
func TestCrossNode40163WithoutRecordFails(t *testing.T) {
	ctx := context.Background()
	want := invalidCodeErr()
	ex := &fakeExchanger{errs: []error{want}}
	s := newService(t, t.TempDir(), ex, newFakeClock())
	_, err := s.Login(ctx, testApp, "code-X")
	pe := platform.AsError(err)
	if pe == nil || pe.Errcode != 40163 || pe.Code != platform.InvalidCode {
		t.Fatalf("err = %v, want the 40163 InvalidCode error", err)
	}
	if pe != want {
		t.Error("the 40163 error was replaced on its way to the caller")
	}
}

// Node B finds node A's code record before asking: its exchanger is never
// called.
func TestCrossNodeReusesStoredCodeRecord(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	dir := t.TempDir()
	exA := &fakeExchanger{}
	nodeA := newService(t, dir, exA, clock)
	resA, err := nodeA.Login(ctx, testApp, "code-X")
	if err != nil {
		t.Fatal(err)
	}
	exB := &fakeExchanger{errs: []error{invalidCodeErr()}}
	nodeB := newService(t, dir, exB, clock)
	clock.Advance(time.Minute)
	resB, err := nodeB.Login(ctx, testApp, "code-X")
	if err != nil {
		t.Fatalf("node B: %v", err)
	}
	if c := exB.calls.Load(); c != 0 {
		t.Errorf("node B exchanger called %d times, want 0", c)
	}
	if resB.User.OpenID != resA.User.OpenID {
		t.Errorf("node B openid = %q, want %q", resB.User.OpenID, resA.User.OpenID)
	}
	// After the code's lifetime node B no longer trusts A's record.
	clock.Advance(CodeLifetime)
	if _, err := nodeB.Login(ctx, testApp, "code-X"); platform.AsError(err) == nil {
		t.Errorf("node B after CodeLifetime: err = %v, want the exchanger's 40163", err)
	}
	if c := exB.calls.Load(); c != 1 {
		t.Errorf("node B exchanger called %d times after expiry, want 1", c)
	}
}

// A new login of the same user replaces the session_key (the platform keeps
// only the newest) and keeps what else was stored about them.
func TestNewLoginReplacesSessionKeyKeepsProfile(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	ex := &fakeExchanger{openID: "o-same"}
	s := newService(t, t.TempDir(), ex, clock)

	if _, err := s.Login(ctx, testApp, "code-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.UpdateUser(ctx, testApp.AppID, "o-same", func(u *store.User) error {
		u.Profile = &store.Profile{Nickname: "小明", AvatarURL: "https://example.com/a.png"}
		u.Phone = &store.PhoneNumber{Number: "+8613800000000", PureNumber: "13800000000", CountryCode: "86"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	res, err := s.Login(ctx, testApp, "code-2")
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Store.LoadUser(ctx, testApp.AppID, "o-same")
	if err != nil {
		t.Fatal(err)
	}
	if u.SessionKey != "key-1" || !u.SessionKeyUpdated.Equal(clock.Now()) {
		t.Errorf("stored SessionKey = %q updated %v, want key-1 updated now", u.SessionKey, u.SessionKeyUpdated)
	}
	if u.Profile == nil || u.Profile.Nickname != "小明" || u.Phone == nil || u.Phone.Number != "+8613800000000" {
		t.Errorf("profile/phone lost: %+v phone %v", u.Profile, u.Phone)
	}
	// The new token carries the profile stored earlier.
	id, _, err := s.Codec.Verify(res.AccessToken, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id.Nickname != "小明" || id.AvatarURL != "https://example.com/a.png" || id.Phone != "+8613800000000" {
		t.Errorf("token identity = %+v, want the stored profile", id)
	}
}

// The client that started an exchange hangs up: the exchange must go on
// for the others waiting on it. If the exchange ran on the first caller's
// ctx, the fake would return context.Canceled to everyone.
func TestCancelledFirstCallerDoesNotFailWaiters(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	ex := &fakeExchanger{release: release, started: make(chan struct{}, 1)}
	s := newService(t, t.TempDir(), ex, clock)

	ctx1, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := s.Login(ctx1, testApp, "code-C")
		first <- err
	}()
	<-ex.started // the first caller's exchange is on the wire

	second := make(chan error, 1)
	var res2 *Result
	go func() {
		var err error
		res2, err = s.Login(context.Background(), testApp, "code-C")
		second <- err
	}()
	time.Sleep(20 * time.Millisecond) // let the second caller join the flight
	cancel()
	time.Sleep(20 * time.Millisecond) // a cancel-aware exchange would return now
	close(release)

	if err := <-second; err != nil {
		t.Fatalf("waiter failed because the first caller hung up: %v", err)
	}
	if res2.User.OpenID != "o-code-C" {
		t.Errorf("waiter openid = %q", res2.User.OpenID)
	}
	if ex.sawCancel.Load() {
		t.Error("the exchange saw the first caller's cancellation")
	}
	if c := ex.calls.Load(); c != 1 {
		t.Errorf("exchanger called %d times, want 1", c)
	}
	// The first caller may succeed or report its own cancellation, but
	// nothing else.
	if err := <-first; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("first caller err = %v", err)
	}
}

// A waiter whose own ctx ends stops waiting, without hurting the exchange.
func TestWaiterCancelReturnsCtxErr(t *testing.T) {
	clock := newFakeClock()
	release := make(chan struct{})
	ex := &fakeExchanger{release: release, started: make(chan struct{}, 1)}
	s := newService(t, t.TempDir(), ex, clock)

	first := make(chan error, 1)
	go func() {
		_, err := s.Login(context.Background(), testApp, "code-W")
		first <- err
	}()
	<-ex.started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	waiter := make(chan error, 1)
	go func() {
		_, err := s.Login(ctx, testApp, "code-W")
		waiter <- err
	}()
	// Had the waiter started an exchange of its own instead of joining the
	// flight, it would block on release like the first one: fail, not hang.
	select {
	case err := <-waiter:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiter err = %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("waiter did not return when its ctx ended")
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("first caller: %v", err)
	}
	if c := ex.calls.Load(); c != 1 {
		t.Errorf("exchanger called %d times, want 1", c)
	}
}

// Finished flights of dead codes are swept, so the in-memory map holds only
// the codes of the last few minutes.
func TestExpiredFlightsAreSwept(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	ex := &fakeExchanger{}
	s := newService(t, t.TempDir(), ex, clock)

	for _, code := range []string{"old-1", "old-2", "old-3"} {
		if _, err := s.Login(ctx, testApp, code); err != nil {
			t.Fatal(err)
		}
	}
	if n := flightCount(s); n != 3 {
		t.Fatalf("flights after 3 logins = %d, want 3", n)
	}
	clock.Advance(CodeLifetime + time.Minute)
	if _, err := s.Login(ctx, testApp, "new-1"); err != nil {
		t.Fatal(err)
	}
	if n := flightCount(s); n != 1 {
		t.Errorf("flights after expiry and one new login = %d, want 1 (old ones swept)", n)
	}
	// The old code is no longer answered from memory (or storage).
	if _, err := s.Login(ctx, testApp, "old-1"); err != nil {
		t.Fatal(err)
	}
	if c := ex.callsFor("old-1"); c != 2 {
		t.Errorf("old code exchanged %d times, want 2", c)
	}
	// A code still alive is not swept.
	clock.Advance(2 * time.Minute)
	if _, err := s.Login(ctx, testApp, "new-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, testApp, "new-1"); err != nil {
		t.Fatal(err)
	}
	if c := ex.callsFor("new-1"); c != 1 {
		t.Errorf("live code new-1 exchanged %d times, want 1", c)
	}
}

func flightCount(s *Service) int {
	return s.flights().Len()
}

func TestIdentityOf(t *testing.T) {
	sess := &store.Session{ID: "sid", AppID: "wx1", OpenID: "o-1", Source: "qq-miniprogram"}
	user := &store.User{AppID: "wx1", OpenID: "o-other", UnionID: "u-1", Phone: &store.PhoneNumber{Number: "+86", CountryCode: "86"},
		Profile: &store.Profile{Nickname: "n", AvatarURL: "a"}, SessionKey: "secret"}
	got := IdentityOf(sess, user)
	want := identity.Identity{SessionID: "sid", AppID: "wx1", OpenID: "o-1", UnionID: "u-1",
		Source: "qq-miniprogram", Nickname: "n", AvatarURL: "a", Phone: "+86"}
	if got != want {
		t.Errorf("IdentityOf = %+v, want %+v", got, want)
	}
	user.Profile, user.Phone = nil, nil
	if got := IdentityOf(sess, user); got.Nickname != "" || got.AvatarURL != "" || got.Phone != "" {
		t.Errorf("IdentityOf without profile = %+v", got)
	}
}

// A Prepare step changes the user before the session starts; its error
// fails the login, starts no session, and keeps the exchanged code usable.
func TestLoginWithPrepare(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	ex := &fakeExchanger{openID: "o-prep"}
	s := newService(t, t.TempDir(), ex, clock)

	boom := errors.New("boom")
	if _, err := s.LoginWith(ctx, testApp, "code-p", func(context.Context, *store.User) (*store.User, error) {
		return nil, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the Prepare error", err)
	}
	res, err := s.LoginWith(ctx, testApp, "code-p", func(_ context.Context, u *store.User) (*store.User, error) {
		if u.SessionKey == "" {
			t.Error("Prepare got a user without the session key")
		}
		u.Profile = &store.Profile{Nickname: "prepared"}
		return u, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.User.Profile == nil || res.User.Profile.Nickname != "prepared" {
		t.Errorf("result user = %+v", res.User)
	}
	id, _, err := s.Codec.Verify(res.AccessToken, clock.Now())
	if err != nil || id.Nickname != "prepared" {
		t.Errorf("token identity = %+v, %v", id, err)
	}
	if ex.calls.Load() != 1 {
		t.Errorf("the code was exchanged %d times, want once", ex.calls.Load())
	}
}

// Reissue carries the user's new details but never outlives the token it
// replaces.
func TestReissue(t *testing.T) {
	clock := newFakeClock()
	s := newService(t, t.TempDir(), &fakeExchanger{}, clock)
	current := identity.Identity{SessionID: "sid", AppID: testApp.AppID, OpenID: "o-1", Source: "wechat-miniprogram"}
	user := &store.User{AppID: testApp.AppID, OpenID: "o-1", UnionID: "u-1",
		Profile: &store.Profile{Nickname: "new"}, Phone: &store.PhoneNumber{Number: "139"}}

	expires := clock.Now().Add(10 * time.Minute)
	access, exp, err := s.Reissue(current, user, expires)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(expires.Truncate(time.Second)) && !exp.Equal(expires) {
		t.Errorf("new token expires %v, want the old token's %v", exp, expires)
	}
	id, _, err := s.Codec.Verify(access, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id.SessionID != "sid" || id.Nickname != "new" || id.Phone != "139" || id.UnionID != "u-1" {
		t.Errorf("identity = %+v", id)
	}
	// A token in its last moments still gets a usable one.
	if _, exp, err := s.Reissue(current, user, clock.Now().Add(100*time.Millisecond)); err != nil || exp.Sub(clock.Now()) < time.Second-time.Millisecond {
		t.Errorf("almost expired: exp in %v, err %v", exp.Sub(clock.Now()), err)
	}
}
