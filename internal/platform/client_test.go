package platform

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const (
	testAppID = "wx1234567890abcdef"
	// testSecret is distinctive so a leak into any error text is found by
	// strings.Contains.
	testSecret = "S3CRET-must-never-leak-7f3a9c"
)

// fastClient keeps the retry pause short so tests stay quick.
func fastClient() *Client {
	return &Client{RetryDelay: 10 * time.Millisecond}
}

func testApp(base string) App {
	return App{AppID: testAppID, Secret: testSecret, Kind: WeChat, APIBase: base}
}

func TestCode2SessionSuccess(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	sess, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := fakeplatform.OpenID(testAppID, "alice"); sess.OpenID != want {
		t.Errorf("OpenID = %q, want %q", sess.OpenID, want)
	}
	if want := fakeplatform.UnionID("alice"); sess.UnionID != want {
		t.Errorf("UnionID = %q, want %q", sess.UnionID, want)
	}
	if want := srv.LastSessionKey(testAppID, sess.OpenID); sess.SessionKey != want {
		t.Errorf("SessionKey = %q, want the server's %q", sess.SessionKey, want)
	}
	if key, err := base64.StdEncoding.DecodeString(sess.SessionKey); err != nil || len(key) != 16 {
		t.Errorf("SessionKey %q is not base64 of 16 bytes", sess.SessionKey)
	}
	if got := srv.Calls("/sns/jscode2session"); got != 1 {
		t.Errorf("platform called %d times, want 1", got)
	}
	if got := srv.SecretsSeen(); len(got) != 1 || got[0] != testSecret {
		t.Errorf("secrets sent = %q, want [%q]", got, testSecret)
	}
}

func TestCode2SessionWithoutUnionID(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	sess, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), fakeplatform.CodeNoUnion)
	if err != nil {
		t.Fatal(err)
	}
	if sess.UnionID != "" {
		t.Errorf("UnionID = %q, want empty", sess.UnionID)
	}
}

func TestCode2SessionFailures(t *testing.T) {
	tests := []struct {
		code       string
		wantCode   ErrorCode
		wantErrno  int
		wantCalls  int
		retryAfter time.Duration
	}{
		{fakeplatform.CodeInvalid, InvalidCode, 40029, 1, 0},
		{fakeplatform.CodeUsed, InvalidCode, 40163, 1, 0},
		{fakeplatform.CodeBlocked, LoginBlocked, 40226, 1, 0},
		{fakeplatform.CodeLimited, RateLimited, 45011, 1, 60 * time.Second},
		{fakeplatform.CodeBusy, Unavailable, -1, 2, 0}, // one retry, then give up
		{fakeplatform.CodeQuota, Unavailable, 45009, 1, 0},
		{fakeplatform.CodeHTTP500, Unavailable, 0, 1, 0},
		{fakeplatform.CodeGarbage, Unavailable, 0, 1, 0},
		{fakeplatform.CodeBadOpenID, Unavailable, 0, 1, 0},
		{fakeplatform.CodeBadKey, Unavailable, 0, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv := fakeplatform.NewServer(t)
			_, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), tt.code)
			e := wantError(t, err, "code2session", tt.wantCode, tt.wantErrno)
			if e.RetryAfter != tt.retryAfter {
				t.Errorf("RetryAfter = %v, want %v", e.RetryAfter, tt.retryAfter)
			}
			if got := srv.CodeCalls(tt.code); got != tt.wantCalls {
				t.Errorf("platform called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestCode2SessionBusyOnceSucceedsOnRetry(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	sess, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), fakeplatform.CodeBusyOnce)
	if err != nil {
		t.Fatal(err)
	}
	if want := fakeplatform.OpenID(testAppID, fakeplatform.CodeBusyOnce); sess.OpenID != want {
		t.Errorf("OpenID = %q, want %q", sess.OpenID, want)
	}
	if got := srv.CodeCalls(fakeplatform.CodeBusyOnce); got != 2 {
		t.Errorf("platform called %d times, want 2", got)
	}
}

func TestCode2SessionCredentials(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.AddApp(testAppID, testSecret)
	client := fastClient()
	ctx := context.Background()

	wrongSecret := testApp(srv.URL)
	wrongSecret.Secret = testSecret + "-wrong"
	_, err := client.Code2Session(ctx, wrongSecret, "alice")
	e := wantError(t, err, "code2session", Unavailable, 40125)
	if strings.Contains(e.Error(), wrongSecret.Secret) {
		t.Errorf("error %q contains the secret", e.Error())
	}

	unknownApp := testApp(srv.URL)
	unknownApp.AppID = "wxunknown"
	_, err = client.Code2Session(ctx, unknownApp, "alice")
	wantError(t, err, "code2session", Unavailable, 40013)

	if _, err := client.Code2Session(ctx, testApp(srv.URL), "alice"); err != nil {
		t.Errorf("the registered app failed: %v", err)
	}
}

// TestCode2SessionAnswers covers answers the fake does not script: how
// errcode is spelled, unknown errcodes and malformed successes.
func TestCode2SessionAnswers(t *testing.T) {
	const (
		openid = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
		key    = "tiihtNczf5v6AKRyjwEUhQ=="
	)
	tests := []struct {
		name      string
		status    int
		body      string
		wantErr   ErrorCode // "" for success
		wantErrno int
	}{
		{"no errcode", 200, `{"openid":"` + openid + `","session_key":"` + key + `"}`, "", 0},
		{"errcode 0", 200, `{"errcode":0,"errmsg":"ok","openid":"` + openid + `","session_key":"` + key + `","unionid":"oUnion_-9"}`, "", 0},
		{"unknown errcode", 200, `{"errcode":99999,"errmsg":"something new"}`, Unavailable, 99999},
		{"bad credentials 40013", 200, `{"errcode":40013,"errmsg":"invalid appid"}`, Unavailable, 40013},
		{"errcode as string", 200, `{"errcode":"40029"}`, Unavailable, 0},
		{"JSON array", 200, `[]`, Unavailable, 0},
		{"null", 200, `null`, Unavailable, 0},
		{"empty body", 200, ``, Unavailable, 0},
		{"openid missing", 200, `{"session_key":"` + key + `"}`, Unavailable, 0},
		{"openid too long", 200, `{"openid":"` + strings.Repeat("o", 129) + `","session_key":"` + key + `"}`, Unavailable, 0},
		{"openid 128 bytes", 200, `{"openid":"` + strings.Repeat("o", 128) + `","session_key":"` + key + `"}`, "", 0},
		{"openid bad charset", 200, `{"openid":"o+x","session_key":"` + key + `"}`, Unavailable, 0},
		{"openid wrong type", 200, `{"openid":12,"session_key":"` + key + `"}`, Unavailable, 0},
		{"unionid bad charset", 200, `{"openid":"` + openid + `","unionid":"u nion","session_key":"` + key + `"}`, Unavailable, 0},
		{"session_key 15 bytes", 200, `{"openid":"` + openid + `","session_key":"` + base64.StdEncoding.EncodeToString(make([]byte, 15)) + `"}`, Unavailable, 0},
		{"session_key url-safe base64", 200, `{"openid":"` + openid + `","session_key":"tiihtNczf5v6AKRyjwEUhQ"}`, Unavailable, 0},
		{"session_key missing", 200, `{"openid":"` + openid + `"}`, Unavailable, 0},
		{"HTTP 404", 404, `{"errcode":0}`, Unavailable, 0},
		{"HTTP 302", 302, ``, Unavailable, 0},
		{"over 1 MiB", 200, `{"openid":"` + openid + `","session_key":"` + key + `","pad":"` + strings.Repeat("x", 1<<20) + `"}`, Unavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain") // as WeChat often does
				if tt.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			defer srv.Close()
			sess, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), "alice")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if sess.SessionKey != key {
					t.Errorf("SessionKey = %q, want %q", sess.SessionKey, key)
				}
				return
			}
			wantError(t, err, "code2session", tt.wantErr, tt.wantErrno)
		})
	}
}

func TestCode2SessionTimeout(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := &Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := client.Code2Session(context.Background(), testApp(srv.URL), fakeplatform.CodeSlow)
	e := wantError(t, err, "code2session", Unavailable, 0)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("took %v; the 200ms timeout was not applied", elapsed)
	}
	if !strings.Contains(e.Message, "200ms") {
		t.Errorf("Message %q does not say how long was waited", e.Message)
	}
}

func TestCode2SessionTimeoutCoversRetryPause(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := &Client{Timeout: 200 * time.Millisecond, RetryDelay: time.Minute}
	start := time.Now()
	_, err := client.Code2Session(context.Background(), testApp(srv.URL), fakeplatform.CodeBusy)
	wantError(t, err, "code2session", Unavailable, 0)
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("took %v; the retry pause ignored the timeout", elapsed)
	}
	if got := srv.CodeCalls(fakeplatform.CodeBusy); got != 1 {
		t.Errorf("platform called %d times, want 1 (no retry after the timeout)", got)
	}
}

func TestCode2SessionContext(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.SetDelay(time.Minute)
	client := fastClient()

	t.Run("cancelled before the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := client.Code2Session(ctx, testApp(srv.URL), "alice")
		e := wantError(t, err, "code2session", Unavailable, 0)
		if !strings.Contains(e.Message, "cancelled") {
			t.Errorf("Message = %q, want it to say the request was cancelled", e.Message)
		}
	})
	t.Run("cancelled during the call", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			for srv.CodeCalls("bob") == 0 {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}()
		_, err := client.Code2Session(ctx, testApp(srv.URL), "bob")
		wantError(t, err, "code2session", Unavailable, 0)
	})
	t.Run("caller's deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := client.Code2Session(ctx, testApp(srv.URL), "carol")
		e := wantError(t, err, "code2session", Unavailable, 0)
		if !strings.Contains(e.Message, "in time") {
			t.Errorf("Message = %q, want a timeout message", e.Message)
		}
	})
}

func TestCode2SessionTransportErrors(t *testing.T) {
	// A port that was just open and is now closed: the dial is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedBase := "http://" + ln.Addr().String()
	ln.Close()

	leakyTransport := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("proxy failed for %s", req.URL) // the URL holds the secret
	})

	tests := []struct {
		name   string
		client *Client
		base   string
	}{
		{"closed port", fastClient(), closedBase},
		{"transport error naming the URL", &Client{HTTP: &http.Client{Transport: leakyTransport}}, "https://api.weixin.qq.com"},
		{"invalid api base", fastClient(), "http://[::1"},
		{"unsupported scheme", fastClient(), "ftp://example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.Code2Session(context.Background(), testApp(tt.base), "alice")
			wantError(t, err, "code2session", Unavailable, 0)
		})
	}
}

func TestCode2SessionRejectsCodesLocally(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	for _, code := range []string{"", strings.Repeat("c", 257)} {
		_, err := fastClient().Code2Session(context.Background(), testApp(srv.URL), code)
		wantError(t, err, "code2session", InvalidCode, 0)
	}
	if got := srv.Calls("/sns/jscode2session"); got != 0 {
		t.Errorf("platform called %d times, want 0", got)
	}
}

func TestCode2SessionSingleUse(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := fastClient()
	ctx := context.Background()

	first, err := client.Code2Session(ctx, testApp(srv.URL), "dave")
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Code2Session(ctx, testApp(srv.URL), "dave")
	wantError(t, err, "code2session", InvalidCode, 40163)

	// The same code in another app is another exchange: another openid,
	// the same unionid.
	other := testApp(srv.URL)
	other.AppID = "wxother"
	second, err := client.Code2Session(ctx, other, "dave")
	if err != nil {
		t.Fatal(err)
	}
	if second.OpenID == first.OpenID || second.UnionID != first.UnionID {
		t.Errorf("other app: openid %q unionid %q; first app: openid %q unionid %q",
			second.OpenID, second.UnionID, first.OpenID, first.UnionID)
	}
	if second.SessionKey == first.SessionKey {
		t.Error("two logins got the same session_key")
	}
}

func TestCode2SessionSingleUseConcurrent(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := fastClient()
	const n = 20
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		successes int
	)
	for range n {
		wg.Go(func() {
			_, err := client.Code2Session(context.Background(), testApp(srv.URL), "erin")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				successes++
			} else if e := AsError(err); e == nil || e.Errcode != 40163 {
				t.Errorf("got %v, want success or errcode 40163", err)
			}
		})
	}
	wg.Wait()
	if successes != 1 {
		t.Errorf("%d exchanges of one code succeeded, want 1", successes)
	}
}

// TestCode2SessionURL checks what is sent where, for each kind, through a
// recording transport that answers every request with a canned success.
func TestCode2SessionURL(t *testing.T) {
	tests := []struct {
		name string
		app  App
		want string // scheme://host/path
	}{
		{"wechat default", App{AppID: testAppID, Secret: testSecret, Kind: WeChat}, "https://api.weixin.qq.com/sns/jscode2session"},
		{"zero kind is wechat", App{AppID: testAppID, Secret: testSecret}, "https://api.weixin.qq.com/sns/jscode2session"},
		{"qq default", App{AppID: testAppID, Secret: testSecret, Kind: QQ}, "https://api.q.qq.com/sns/jscode2session"},
		{"trailing slash", App{AppID: testAppID, Secret: testSecret, Kind: QQ, APIBase: "http://fake.test/"}, "http://fake.test/sns/jscode2session"},
		{"base with a path", App{AppID: testAppID, Secret: testSecret, APIBase: "http://proxy.test/wx/"}, "http://proxy.test/wx/sns/jscode2session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *url.URL
			client := &Client{HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
				got = req.URL
				rec := httptest.NewRecorder()
				fmt.Fprintf(rec, `{"openid":"o1","session_key":%q}`, fakeplatform.SessionKey("", ""))
				return rec.Result(), nil
			})}}
			if _, err := client.Code2Session(context.Background(), tt.app, "frank"); err != nil {
				t.Fatal(err)
			}
			if u := got.Scheme + "://" + got.Host + got.Path; u != tt.want {
				t.Errorf("called %s, want %s", u, tt.want)
			}
			q := got.Query()
			want := url.Values{"appid": {testAppID}, "secret": {testSecret}, "js_code": {"frank"}, "grant_type": {"authorization_code"}}
			if q.Encode() != want.Encode() {
				t.Errorf("query = %v, want %v", q, want)
			}
		})
	}
}

func TestCode2SessionQQAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := App{AppID: "1110000000", Secret: testSecret, Kind: QQ, APIBase: srv.URL + "/"}
	sess, err := fastClient().Code2Session(context.Background(), app, "gina")
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != fakeplatform.OpenID(app.AppID, "gina") {
		t.Errorf("OpenID = %q", sess.OpenID)
	}
	if got := srv.Calls("/sns/jscode2session"); got != 1 {
		t.Errorf("calls to /sns/jscode2session = %d, want 1", got)
	}
	_, err = fastClient().Code2Session(context.Background(), app, fakeplatform.CodeUsed)
	if e := wantError(t, err, "code2session", InvalidCode, 40163); !strings.Contains(e.Message, "qq.login") {
		t.Errorf("QQ message %q does not name qq.login", e.Message)
	}
}

func TestCode2SessionSandboxTransport(t *testing.T) {
	client := &Client{HTTP: &http.Client{Transport: fakeplatform.Sandbox().Transport()}, RetryDelay: time.Millisecond}
	app := App{AppID: testAppID, Secret: "anything", Kind: WeChat} // the real base: must not be dialled
	ctx := context.Background()

	for range 2 { // the sandbox is deterministic and codes are reusable
		sess, err := client.Code2Session(ctx, app, "alice")
		if err != nil {
			t.Fatal(err)
		}
		want := Session{OpenID: fakeplatform.OpenID(testAppID, "alice"), UnionID: fakeplatform.UnionID("alice"), SessionKey: fakeplatform.SessionKey(testAppID, "alice")}
		if *sess != want {
			t.Errorf("got %+v, want %+v", *sess, want)
		}
	}

	for code, want := range map[string]ErrorCode{
		fakeplatform.CodeInvalid: InvalidCode,
		fakeplatform.CodeUsed:    InvalidCode,
		fakeplatform.CodeBlocked: LoginBlocked,
		fakeplatform.CodeBusy:    Unavailable,
		fakeplatform.CodeLimited: RateLimited,
	} {
		_, err := client.Code2Session(ctx, app, code)
		if e := AsError(err); e == nil || e.Code != want {
			t.Errorf("code %q: got %v, want %s", code, err, want)
		}
	}
}

func TestErrorText(t *testing.T) {
	e := errcodeError("code2session", 40163, "code been used, rid: 66ab-1 "+testSecret+"\n", nil, testSecret)
	checkNoLeak(t, e)
	got := e.Error()
	for _, want := range []string{"code2session", "40163", "rid: 66ab-1", "[redacted]"} {
		if !strings.Contains(got, want) {
			t.Errorf("Error() = %q, want it to contain %q", got, want)
		}
	}
	if strings.ContainsAny(got, "\n") {
		t.Errorf("Error() = %q contains a newline", got)
	}

	long := errcodeError("code2session", 1, strings.Repeat("é", 300), nil, "")
	if len(long.Errmsg) > maxErrmsgLen+3 || !strings.HasSuffix(long.Errmsg, "...") {
		t.Errorf("Errmsg not truncated: %d bytes", len(long.Errmsg))
	}

	noErrcode := unavailable("code2session", "the platform answered HTTP 500; try again later")
	if got, want := noErrcode.Error(), "platform code2session: the platform answered HTTP 500; try again later"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestAsError(t *testing.T) {
	e := &Error{Code: InvalidCode, API: "code2session"}
	if AsError(fmt.Errorf("login: %w", e)) != e {
		t.Error("AsError did not find a wrapped *Error")
	}
	if AsError(errors.New("other")) != nil || AsError(nil) != nil {
		t.Error("AsError found an *Error that is not there")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Concurrent calls reuse their connections: after one wave of parallel
// logins, a second wave opens no new ones. With Go's default of 2 idle
// connections per host, most of the second wave would dial again.
func TestConnectionsAreReused(t *testing.T) {
	var mu sync.Mutex
	opened := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // keep the wave's calls in flight together
		fmt.Fprintf(w, `{"openid":"o-%s","session_key":%q}`, r.URL.Query().Get("js_code"), base64.StdEncoding.EncodeToString(make([]byte, 16)))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()

	c := &Client{}
	app := App{AppID: testAppID, Secret: testSecret, Kind: WeChat, APIBase: srv.URL}
	wave := func(n int) {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Code2Session(context.Background(), app, fmt.Sprintf("w%dc%d", n, i)); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	wave(1)
	mu.Lock()
	first := opened
	mu.Unlock()
	wave(2)
	mu.Lock()
	defer mu.Unlock()
	if again := opened - first; again > 2 {
		t.Errorf("the second wave of 16 calls opened %d new connections (the first opened %d); idle ones were not kept", again, first)
	}
}
