package platform

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const (
	stableTokenPath = "/cgi-bin/stable_token"
	textCheckPath   = "/wxa/msg_sec_check"
	testOpenID      = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
)

// fakeClock is a Service.Now that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newService(clock *fakeClock) *Service {
	s := &Service{Client: fastClient()}
	if clock != nil {
		s.Now = clock.Now
	}
	return s
}

func TestServiceCachesToken(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	first, err := s.AccessToken(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		token, err := s.AccessToken(context.Background(), app)
		if err != nil || token != first {
			t.Fatalf("got %q %v, want the cached %q", token, err, first)
		}
	}
	if got := srv.Calls(stableTokenPath); got != 1 {
		t.Errorf("%d fetches, want 1", got)
	}
}

func TestServiceZeroValue(t *testing.T) {
	// A zero Service (zero Client, time.Now) works; an unknown kind has no
	// API base, so this fails locally without dialling anything.
	var s Service
	_, err := s.AccessToken(context.Background(), App{AppID: testAppID, Secret: testSecret, Kind: "nope"})
	wantError(t, err, "stable_token", Unavailable, 0)
}

func TestServiceConcurrentCallersShareOneFetch(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.SetDelay(100 * time.Millisecond) // keep the fetch open while everyone arrives
	s := newService(nil)
	app := testApp(srv.URL)

	const n = 50
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			token, err := s.AccessToken(context.Background(), app)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			tokens[i] = token
		})
	}
	wg.Wait()
	if got := srv.Calls(stableTokenPath); got != 1 {
		t.Errorf("%d fetches for %d concurrent callers, want 1", got, n)
	}
	for i, token := range tokens {
		if token != tokens[0] || token == "" {
			t.Fatalf("caller %d got %q, caller 0 got %q", i, token, tokens[0])
		}
	}
}

func TestServiceConcurrentCallersShareOneFailure(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.SetDelay(100 * time.Millisecond)
	srv.FailPath(stableTokenPath)
	s := newService(nil)

	var (
		wg       sync.WaitGroup
		failures atomic.Int32
	)
	for range 20 {
		wg.Go(func() {
			_, err := s.AccessToken(context.Background(), testApp(srv.URL))
			if e := AsError(err); e != nil && e.Code == Unavailable {
				failures.Add(1)
			}
		})
	}
	wg.Wait()
	if got := srv.Calls(stableTokenPath); got != 1 || failures.Load() != 20 {
		t.Errorf("%d fetches, %d failures; want 1 and 20", got, failures.Load())
	}
}

func TestServiceRefreshMargin(t *testing.T) {
	for _, tt := range []struct {
		name   string
		margin time.Duration
		want   time.Duration // refetch from this long after the fetch
	}{
		{"default", 0, 7200*time.Second - DefaultRefreshMargin},
		{"custom", 20 * time.Minute, 7200*time.Second - 20*time.Minute},
		{"bounded by half the lifetime", 3 * time.Hour, 3600 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeplatform.NewServer(t)
			clock := newFakeClock()
			s := newService(clock)
			s.RefreshMargin = tt.margin
			app := testApp(srv.URL)
			ctx := context.Background()

			first, err := s.AccessToken(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			clock.Add(tt.want - time.Second)
			if token, err := s.AccessToken(ctx, app); err != nil || token != first {
				t.Errorf("a second before the margin: got %q %v, want the cached token", token, err)
			}
			clock.Add(time.Second)
			second, err := s.AccessToken(ctx, app)
			if err != nil || second == first {
				t.Errorf("at the margin: got %q %v, want a new token", second, err)
			}
			if got := srv.Calls(stableTokenPath); got != 2 {
				t.Errorf("%d fetches, want 2", got)
			}
		})
	}
}

func TestServiceShortLifetimeIsUsed(t *testing.T) {
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := fetches.Add(1)
		fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":60}`, n)
	}))
	defer srv.Close()
	clock := newFakeClock()
	s := newService(clock)
	app := testApp(srv.URL)
	ctx := context.Background()

	s.AccessToken(ctx, app)
	clock.Add(29 * time.Second) // a 60 s token is kept for 30 s, not refetched at once
	if token, _ := s.AccessToken(ctx, app); token != "tok-1" || fetches.Load() != 1 {
		t.Errorf("got %q after %d fetches, want tok-1 after 1", token, fetches.Load())
	}
	clock.Add(time.Second)
	if token, _ := s.AccessToken(ctx, app); token != "tok-2" {
		t.Errorf("got %q, want tok-2", token)
	}
}

func TestServiceFailedFetchIsNotCached(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	ctx := context.Background()

	srv.FailPath(stableTokenPath)
	_, err := s.AccessToken(ctx, app)
	wantError(t, err, "stable_token", Unavailable, 0)
	srv.HealPath(stableTokenPath)

	token, err := s.AccessToken(ctx, app)
	if err != nil || token == "" {
		t.Fatalf("after healing: %q %v", token, err)
	}
	if got := srv.Calls(stableTokenPath); got != 2 {
		t.Errorf("%d fetches, want 2 (the failure was not cached)", got)
	}
}

func TestServiceFailedRefreshKeepsValidToken(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	clock := newFakeClock()
	s := newService(clock)
	app := testApp(srv.URL)
	ctx := context.Background()

	first, err := s.AccessToken(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	srv.FailPath(stableTokenPath)
	clock.Add(7200*time.Second - time.Minute) // inside the margin, before the expiry
	if token, err := s.AccessToken(ctx, app); err != nil || token != first {
		t.Errorf("refresh failed while the token is valid: got %q %v, want the old token", token, err)
	}
	clock.Add(time.Minute) // expired: nothing to fall back on
	_, err = s.AccessToken(ctx, app)
	wantError(t, err, "stable_token", Unavailable, 0, first)
	if got := srv.Calls(stableTokenPath); got != 3 {
		t.Errorf("%d fetches, want 3", got)
	}
}

func TestServiceCallerGivesUpWithoutCancellingTheFetch(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.SetDelay(300 * time.Millisecond)
	s := newService(nil)
	app := testApp(srv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := s.AccessToken(ctx, app)
		impatient <- err
	}()
	for srv.Calls(stableTokenPath) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	patient := make(chan string, 1)
	go func() {
		token, err := s.AccessToken(context.Background(), app)
		if err != nil {
			t.Error(err)
		}
		patient <- token
	}()
	time.Sleep(20 * time.Millisecond) // let the patient caller join the fetch
	cancel()

	select {
	case err := <-impatient:
		e := wantError(t, err, "stable_token", Unavailable, 0)
		if !strings.Contains(e.Message, "cancelled") {
			t.Errorf("Message %q does not say the request was cancelled", e.Message)
		}
	case <-time.After(200 * time.Millisecond):
		t.Fatal("the cancelled caller kept waiting for the fetch")
	}
	if token := <-patient; token == "" {
		t.Error("the patient caller got no token")
	}
	if got := srv.Calls(stableTokenPath); got != 1 {
		t.Errorf("%d fetches, want 1: the cancellation must not restart or cancel the fetch", got)
	}
}

func TestServiceCancelledCallerDoesNotFetch(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newService(nil).AccessToken(ctx, testApp(srv.URL))
	wantError(t, err, "stable_token", Unavailable, 0)
	if got := srv.Calls(stableTokenPath); got != 0 {
		t.Errorf("%d fetches, want 0", got)
	}
}

func TestServiceKeysTokensByApp(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	ctx := context.Background()
	app := testApp(srv.URL)
	newSecret := app
	newSecret.Secret = testSecret + "-rotated"
	otherApp := app
	otherApp.AppID = "wxother"
	qq := app
	qq.Kind = QQ
	web := app
	web.Kind = WeChatWeb // the same WeChat token API: shares the token

	tokens := map[string]bool{}
	for _, a := range []App{app, newSecret, otherApp, qq, web, app, newSecret} {
		token, err := s.AccessToken(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		tokens[token] = true
	}
	if len(tokens) != 4 || srv.Calls(stableTokenPath) != 3 || srv.Calls("/api/getToken") != 1 {
		t.Errorf("%d tokens, %d stable_token and %d getToken fetches; want 4, 3 and 1",
			len(tokens), srv.Calls(stableTokenPath), srv.Calls("/api/getToken"))
	}
}

func TestServiceRefetchesRejectedToken(t *testing.T) {
	for _, tt := range []struct {
		name    string
		spoil   func(*fakeplatform.Server)
		errcode int
	}{
		{"expired 42001", (*fakeplatform.Server).ExpireTokens, 42001},
		{"invalid 40001", (*fakeplatform.Server).RevokeTokens, 40001},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeplatform.NewServer(t)
			s := newService(nil)
			app := testApp(srv.URL)
			ctx := context.Background()
			if _, err := s.CheckText(ctx, app, testOpenID, "hello"); err != nil {
				t.Fatal(err)
			}
			tt.spoil(srv)
			v, err := s.CheckText(ctx, app, testOpenID, "hello")
			if err != nil || v.Suggest != SuggestPass {
				t.Fatalf("after errcode %d: %+v %v, want a pass", tt.errcode, v, err)
			}
			// One refetch, one retry.
			if srv.Calls(stableTokenPath) != 2 || srv.Calls(textCheckPath) != 3 || len(srv.TextChecks()) != 2 {
				t.Errorf("%d fetches, %d calls, %d checks; want 2, 3, 2",
					srv.Calls(stableTokenPath), srv.Calls(textCheckPath), len(srv.TextChecks()))
			}
			// The new token is cached.
			s.CheckText(ctx, app, testOpenID, "hello")
			if srv.Calls(stableTokenPath) != 2 {
				t.Errorf("%d fetches, want 2", srv.Calls(stableTokenPath))
			}
		})
	}
}

func TestServiceRejectedTwiceFails(t *testing.T) {
	for _, errcode := range []int{40001, 42001, 40014} {
		t.Run(fmt.Sprint(errcode), func(t *testing.T) {
			var fetches, calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == stableTokenPath {
					fetches.Add(1)
					io.WriteString(w, `{"access_token":"always-the-same","expires_in":7200}`)
					return
				}
				calls.Add(1)
				fmt.Fprintf(w, `{"errcode":%d,"errmsg":"token rejected: always-the-same"}`, errcode)
			}))
			defer srv.Close()
			_, err := newService(nil).CheckText(context.Background(), testApp(srv.URL), testOpenID, "hello")
			wantError(t, err, "msg_sec_check", Unavailable, errcode, "always-the-same")
			if fetches.Load() != 2 || calls.Load() != 2 {
				t.Errorf("%d fetches, %d calls; want 2 and 2", fetches.Load(), calls.Load())
			}
		})
	}
}

func TestServiceStaleRejectionKeepsNewerToken(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	clock := newFakeClock()
	s := newService(clock)
	app := testApp(srv.URL)
	ctx := context.Background()

	stale, err := s.AccessToken(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	// Another caller replaces the token (here: the old one reached its
	// refresh time)...
	clock.Add(2 * time.Hour)
	fresh, err := s.AccessToken(ctx, app)
	if err != nil || fresh == stale {
		t.Fatalf("got %q %v, want a fresh token", fresh, err)
	}
	// ...and then a call made with the stale token is refused.
	s.dropToken(newTokenKey(app), stale)
	if token, err := s.AccessToken(ctx, app); err != nil || token != fresh {
		t.Errorf("got %q %v, want the fresh token kept", token, err)
	}
	if got := srv.Calls(stableTokenPath); got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
	// Dropping the cached token itself does drop it.
	s.dropToken(newTokenKey(app), fresh)
	if token, err := s.AccessToken(ctx, app); err != nil || token == fresh {
		t.Errorf("got %q %v, want a third token", token, err)
	}
}

// TestServiceStaleRejectionInFlight is the same race through the API: a
// call still holding a token that another caller has since replaced is
// refused, and is retried with the replacement, without another fetch.
func TestServiceStaleRejectionInFlight(t *testing.T) {
	var (
		fetches atomic.Int32
		started = make(chan struct{})
		release = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stableTokenPath {
			fmt.Fprintf(w, `{"access_token":"tok-%d","expires_in":7200}`, fetches.Add(1))
			return
		}
		switch r.URL.Query().Get("access_token") {
		case "tok-1": // held until tok-2 exists, then refused
			close(started)
			<-release
			io.WriteString(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
		case "tok-2":
			io.WriteString(w, `{"errcode":0,"result":{"suggest":"pass","label":100}}`)
		default:
			io.WriteString(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
		}
	}))
	defer srv.Close()

	clock := newFakeClock()
	s := newService(clock)
	s.Client.Timeout = 10 * time.Second
	app := testApp(srv.URL)
	ctx := context.Background()

	done := make(chan error, 1)
	go func() {
		v, err := s.CheckText(ctx, app, testOpenID, "hello")
		if err == nil && v.Suggest != SuggestPass {
			err = fmt.Errorf("verdict %+v", v)
		}
		done <- err
	}()
	<-started
	clock.Add(2 * time.Hour) // tok-1 reaches its refresh time; another caller fetches tok-2
	if token, err := s.AccessToken(ctx, app); err != nil || token != "tok-2" {
		t.Fatalf("got %q %v, want tok-2", token, err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fetches.Load(); got != 2 {
		t.Errorf("%d fetches, want 2: the refusal of tok-1 must not drop tok-2", got)
	}
}

func TestServiceEchoedTokenIsScrubbed(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stableTokenPath {
			io.WriteString(w, `{"access_token":"tok+en/with=chars","expires_in":7200}`)
			return
		}
		// A broken proxy echoing the token, raw and escaped.
		token := r.URL.Query().Get("access_token")
		fmt.Fprintf(w, `{"errcode":99999,"errmsg":"echo %s %s"}`, token, url.QueryEscape(token))
	}))
	defer srv.Close()
	_, err := newService(nil).CheckText(context.Background(), testApp(srv.URL), testOpenID, "hello")
	e := wantError(t, err, "msg_sec_check", Unavailable, 99999, "tok+en/with=chars", "tok%2Ben%2Fwith%3Dchars")
	if !strings.Contains(e.Errmsg, "[redacted]") {
		t.Errorf("Errmsg %q: the token was not redacted", e.Errmsg)
	}
}

func TestServiceSurvivesPanickingTransport(t *testing.T) {
	var calls atomic.Int32
	s := &Service{Client: &Client{HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if calls.Add(1) == 1 {
			panic("broken transport")
		}
		rec := httptest.NewRecorder()
		io.WriteString(rec, `{"access_token":"tok-1","expires_in":7200}`)
		return rec.Result(), nil
	})}}}
	app := App{AppID: testAppID, Secret: testSecret}
	_, err := s.AccessToken(context.Background(), app)
	wantError(t, err, "stable_token", Unavailable, 0)
	if token, err := s.AccessToken(context.Background(), app); err != nil || token != "tok-1" {
		t.Errorf("after the panic: %q %v", token, err)
	}
}
