package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// mustNotLeak are texts no error may contain in any test: the app secret,
// the fixed and scripted phone numbers, and query parameters that carry a
// secret.
var mustNotLeak = []string{
	testSecret, url.QueryEscape(testSecret),
	fakeplatform.PhoneNumber, fakeplatform.IntlPurePhoneNumber,
	"access_token=", "secret=", "http://", "https://",
}

// wantError asserts err is a *Error with the wanted API, code and errcode,
// with a Message, and that none of its texts contains anything from
// mustNotLeak or leaks (access tokens the test saw). Every test of the
// package's errors goes through it.
func wantError(t *testing.T, err error, api string, code ErrorCode, errcode int, leaks ...string) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e := AsError(err)
	if e == nil {
		t.Fatalf("error %T %q is not a *platform.Error", err, err)
	}
	checkNoLeak(t, e, leaks...)
	if e.API != api || e.Code != code || e.Errcode != errcode {
		t.Errorf("got API %s code %s errcode %d (%q), want %s %s errcode %d", e.API, e.Code, e.Errcode, e.Error(), api, code, errcode)
	}
	if e.Message == "" {
		t.Error("Message is empty")
	}
	return e
}

// checkNoLeak asserts that no text of e contains anything from mustNotLeak
// or leaks, raw or URL-escaped.
func checkNoLeak(t *testing.T, e *Error, leaks ...string) {
	t.Helper()
	for _, text := range []string{e.Error(), e.Message, e.Errmsg} {
		for _, leak := range append(slices.Clone(mustNotLeak), leaks...) {
			if leak != "" && (strings.Contains(text, leak) || strings.Contains(text, url.QueryEscape(leak))) {
				t.Errorf("error text %q contains %q", text, leak)
			}
		}
	}
}

// exchange is one request a recording transport saw.
type exchange struct {
	method, path string
	query        url.Values
	contentType  string
	body         []byte
}

// recordingClient returns a Client whose transport records every request
// and answers it with answer(path), and a function listing the requests.
func recordingClient(answer func(path string) string) (*Client, func() []exchange) {
	var (
		mu  sync.Mutex
		log []exchange
	)
	client := &Client{RetryDelay: time.Millisecond, HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body.Close()
		}
		mu.Lock()
		log = append(log, exchange{req.Method, req.URL.Path, req.URL.Query(), req.Header.Get("Content-Type"), body})
		mu.Unlock()
		rec := httptest.NewRecorder()
		io.WriteString(rec, answer(req.URL.Path))
		return rec.Result(), nil
	})}}
	return client, func() []exchange {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(log)
	}
}

// cannedToken answers token requests with "tok-1" and everything else with
// other.
func cannedToken(other string) func(string) string {
	return func(path string) string {
		if path == "/cgi-bin/stable_token" || path == "/api/getToken" {
			return `{"access_token":"tok-1","expires_in":7200}`
		}
		return other
	}
}

func TestStableTokenRequest(t *testing.T) {
	for _, kind := range []Kind{WeChat, "", WeChatWeb, WeChatQR} {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("%q force %v", kind, force), func(t *testing.T) {
				client, log := recordingClient(cannedToken(""))
				app := App{AppID: testAppID, Secret: testSecret, Kind: kind}
				token, expiresIn, err := client.StableToken(context.Background(), app, force)
				if err != nil || token != "tok-1" || expiresIn != 7200*time.Second {
					t.Fatalf("got %q %v %v", token, expiresIn, err)
				}
				reqs := log()
				if len(reqs) != 1 {
					t.Fatalf("%d requests, want 1", len(reqs))
				}
				r := reqs[0]
				if r.method != http.MethodPost || r.path != "/cgi-bin/stable_token" {
					t.Errorf("sent %s %s, want POST /cgi-bin/stable_token (never /cgi-bin/token)", r.method, r.path)
				}
				if len(r.query) != 0 {
					t.Errorf("query %v, want none: the secret belongs in the body", r.query)
				}
				if r.contentType != "application/json" {
					t.Errorf("Content-Type %q", r.contentType)
				}
				var body map[string]any
				if err := json.Unmarshal(r.body, &body); err != nil {
					t.Fatalf("body %q: %v", r.body, err)
				}
				want := map[string]any{"grant_type": "client_credential", "appid": testAppID, "secret": testSecret, "force_refresh": force}
				if fmt.Sprint(body) != fmt.Sprint(want) {
					t.Errorf("body %v, want %v", body, want)
				}
			})
		}
	}
}

func TestQQGetTokenRequest(t *testing.T) {
	client, log := recordingClient(cannedToken(""))
	app := App{AppID: "1110000000", Secret: testSecret, Kind: QQ}
	token, expiresIn, err := client.StableToken(context.Background(), app, true)
	if err != nil || token != "tok-1" || expiresIn != 7200*time.Second {
		t.Fatalf("got %q %v %v", token, expiresIn, err)
	}
	r := log()[0]
	if r.method != http.MethodGet || r.path != "/api/getToken" || len(r.body) != 0 {
		t.Errorf("sent %s %s with body %q, want GET /api/getToken without a body", r.method, r.path, r.body)
	}
	want := url.Values{"grant_type": {"client_credential"}, "appid": {app.AppID}, "secret": {testSecret}}
	if r.query.Encode() != want.Encode() {
		t.Errorf("query %v, want %v (QQ has no force mode)", r.query, want)
	}
}

func TestStableTokenAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.AddApp(testAppID, testSecret)
	client := fastClient()
	ctx := context.Background()

	token, expiresIn, err := client.StableToken(ctx, testApp(srv.URL), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.Tokens(); len(got) != 1 || got[0] != token || expiresIn != 7200*time.Second {
		t.Errorf("token %q expires in %v; the fake issued %q", token, expiresIn, got)
	}
	if got := srv.SecretsSeen(); !slices.Equal(got, []string{testSecret}) {
		t.Errorf("secrets seen = %q", got)
	}

	wrong := testApp(srv.URL)
	wrong.Secret = testSecret + "-wrong"
	_, _, err = client.StableToken(ctx, wrong, false)
	wantError(t, err, "stable_token", Unavailable, 40125, wrong.Secret, token)

	qq := App{AppID: testAppID, Secret: testSecret, Kind: QQ, APIBase: srv.URL}
	qqToken, _, err := client.StableToken(ctx, qq, false)
	if err != nil || qqToken == token {
		t.Errorf("QQ token %q, %v", qqToken, err)
	}
	if srv.Calls("/api/getToken") != 1 || srv.Calls("/cgi-bin/stable_token") != 2 || srv.Calls("/cgi-bin/token") != 0 {
		t.Error("unexpected token calls")
	}
}

func TestStableTokenAnswers(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantErr   ErrorCode
		wantErrno int
		wantIn    time.Duration
	}{
		{"ok", `{"access_token":"ABC_def-123.~+/=","expires_in":7200}`, "", 0, 2 * time.Hour},
		{"short life", `{"access_token":"abc","expires_in":60}`, "", 0, time.Minute},
		{"too long a life is capped", `{"access_token":"abc","expires_in":99999999999}`, "", 0, 2 * time.Hour},
		{"no token", `{"expires_in":7200}`, Unavailable, 0, 0},
		{"token with a space", `{"access_token":"a b","expires_in":7200}`, Unavailable, 0, 0},
		{"token too long", `{"access_token":"` + strings.Repeat("a", 1025) + `","expires_in":7200}`, Unavailable, 0, 0},
		{"no expires_in", `{"access_token":"abc"}`, Unavailable, 0, 0},
		{"zero expires_in", `{"access_token":"abc","expires_in":0}`, Unavailable, 0, 0},
		{"negative expires_in", `{"access_token":"abc","expires_in":-5}`, Unavailable, 0, 0},
		{"expires_in as a string", `{"access_token":"abc","expires_in":"7200"}`, Unavailable, 0, 0},
		{"wrong secret", `{"errcode":40001,"errmsg":"invalid credential ` + testSecret + `"}`, Unavailable, 40001, 0},
		{"ip whitelist", `{"errcode":40164,"errmsg":"invalid ip 1.2.3.4"}`, Unavailable, 40164, 0},
		{"rate limited", `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`, RateLimited, 45011, 0},
		{"not JSON", `<html>`, Unavailable, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			token, expiresIn, err := fastClient().StableToken(context.Background(), testApp(srv.URL), false)
			if tt.wantErr == "" {
				if err != nil || token == "" || expiresIn != tt.wantIn {
					t.Errorf("got %q %v %v, want a token for %v", token, expiresIn, err, tt.wantIn)
				}
				return
			}
			e := wantError(t, err, "stable_token", tt.wantErr, tt.wantErrno)
			if tt.wantErrno == 40001 && !strings.Contains(e.Message, "appid and secret") {
				t.Errorf("Message %q does not point at the credentials", e.Message)
			}
			if tt.wantErrno == 40164 && !strings.Contains(e.Message, "whitelist") {
				t.Errorf("Message %q does not point at the IP whitelist", e.Message)
			}
		})
	}
}

func TestStableTokenSandbox(t *testing.T) {
	client := &Client{HTTP: &http.Client{Transport: fakeplatform.Sandbox().Transport()}}
	for _, kind := range []Kind{WeChat, QQ} {
		token, expiresIn, err := client.StableToken(context.Background(), App{AppID: testAppID, Secret: "any", Kind: kind}, false)
		if err != nil || token != fakeplatform.AccessToken(testAppID) || expiresIn != fakeplatform.TokenExpiresIn*time.Second {
			t.Errorf("%s: got %q %v %v", kind, token, expiresIn, err)
		}
	}
}
