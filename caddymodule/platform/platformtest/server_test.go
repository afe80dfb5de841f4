package platformtest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/caddymodule/platform/sandbox"
)

// exchange calls code2session on s and returns the HTTP status and raw body.
// It is safe to call from any goroutine.
func exchange(ctx context.Context, s *Server, appid, secret, code string) (int, string, error) {
	q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/sns/jscode2session?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

type answer struct {
	Errcode    int    `json:"errcode"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
}

func login(t *testing.T, s *Server, appid, secret, code string) answer {
	t.Helper()
	status, body, err := exchange(context.Background(), s, appid, secret, code)
	if err != nil || status != http.StatusOK {
		t.Fatalf("code %q: status %d, %v", code, status, err)
	}
	var a answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("code %q: body %q: %v", code, body, err)
	}
	return a
}

func TestLoginIsSandboxIdentityWithFreshKey(t *testing.T) {
	s := New(t)
	a := login(t, s, "wxa", "sec", "alice")
	if a.OpenID != sandbox.OpenID("wxa", "alice") || a.UnionID != sandbox.UnionID("alice") {
		t.Errorf("identity %+v is not the sandbox's", a)
	}
	if a.SessionKey == sandbox.SessionKey("wxa", "alice") || a.SessionKey != s.LastSessionKey("wxa", a.OpenID) {
		t.Errorf("session_key %q is not a fresh key recorded by LastSessionKey", a.SessionKey)
	}
	if got := login(t, s, "wxa", "sec", "alice"); got.Errcode != 40163 {
		t.Errorf("second exchange: %+v, want errcode 40163", got)
	}
	other := login(t, s, "wxb", "sec", "alice")
	if other.Errcode != 0 || other.UnionID != a.UnionID || s.LastSessionKey("wxb", other.OpenID) != other.SessionKey {
		t.Errorf("same code in another app: %+v", other)
	}
	if s.LastSessionKey("wxa", "nobody") != "" {
		t.Error("LastSessionKey invents a key")
	}
	if got := s.CodeCalls("alice"); got != 3 {
		t.Errorf("CodeCalls = %d, want 3", got)
	}
	if got := s.Calls("/sns/jscode2session"); got != 3 {
		t.Errorf("Calls = %d, want 3", got)
	}
	if got := s.SecretsSeen(); !slices.Equal(got, []string{"sec", "sec", "sec"}) {
		t.Errorf("SecretsSeen = %q", got)
	}
}

func TestScriptedCodes(t *testing.T) {
	s := New(t)
	tests := []struct {
		code   string
		status int
		body   string // exact body, when not JSON
		check  func(answer) bool
	}{
		{code: CodeHTTP500, status: 500},
		{code: CodeGarbage, status: 200, body: "<html>not json"},
		{code: CodeQuota, status: 200, check: func(a answer) bool { return a.Errcode == 45009 }},
		{code: CodeBadOpenID, status: 200, check: func(a answer) bool { return a.OpenID == "../../etc" }},
		{code: CodeBadKey, status: 200, check: func(a answer) bool { return a.SessionKey == "short" && a.OpenID != "" }},
		{code: CodeNoUnion, status: 200, check: func(a answer) bool { return a.UnionID == "" && a.OpenID != "" }},
		{code: sandbox.CodeBusy, status: 200, check: func(a answer) bool { return a.Errcode == -1 }},
		{code: sandbox.CodeLimited, status: 200, check: func(a answer) bool { return a.Errcode == 45011 }},
	}
	for _, tt := range tests {
		status, body, err := exchange(context.Background(), s, "wxa", "sec", tt.code)
		if err != nil || status != tt.status {
			t.Errorf("%s: status %d, %v; want %d", tt.code, status, err, tt.status)
			continue
		}
		if tt.body != "" && body != tt.body {
			t.Errorf("%s: body %q, want %q", tt.code, body, tt.body)
		}
		if tt.check != nil {
			var a answer
			if json.Unmarshal([]byte(body), &a) != nil || !tt.check(a) {
				t.Errorf("%s: unexpected answer %s", tt.code, body)
			}
		}
	}

	if a := login(t, s, "wxa", "sec", CodeBusyOnce); a.Errcode != -1 {
		t.Errorf("busyonce, first call: %+v, want errcode -1", a)
	}
	if a := login(t, s, "wxa", "sec", CodeBusyOnce); a.Errcode != 0 || a.OpenID == "" {
		t.Errorf("busyonce, second call: %+v, want a login", a)
	}
}

func TestAddApp(t *testing.T) {
	s := New(t)
	if a := login(t, s, "anything", "whatever", "alice"); a.Errcode != 0 {
		t.Errorf("no apps registered: %+v, want a login", a)
	}
	s.AddApp("wxa", "right")
	for _, tt := range []struct {
		appid, secret, code string
		errcode             int
	}{
		{"wxunknown", "right", "bob", 40013},
		{"wxa", "wrong", "bob", 40125},
		{"wxa", "right", "bob", 0},
	} {
		if a := login(t, s, tt.appid, tt.secret, tt.code); a.Errcode != tt.errcode {
			t.Errorf("%s/%s: errcode %d, want %d", tt.appid, tt.secret, a.Errcode, tt.errcode)
		}
	}
}

func TestDelayAndSlowRespectContext(t *testing.T) {
	s := New(t)
	for _, code := range []string{CodeSlow, "delayed"} {
		if code == "delayed" {
			s.SetDelay(time.Minute)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		_, _, err := exchange(ctx, s, "wxa", "sec", code)
		cancel()
		if err == nil {
			t.Errorf("%s: answered before the client gave up", code)
		}
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("%s: took %v", code, elapsed)
		}
	}
}

func TestSetDelayDelaysAnswers(t *testing.T) {
	s := New(t)
	s.SetDelay(50 * time.Millisecond)
	start := time.Now()
	login(t, s, "wxa", "sec", "alice")
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Errorf("answered after %v, before the 50ms delay", elapsed)
	}
}

func TestCloseReleasesWaitingRequests(t *testing.T) {
	s := New(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		exchange(context.Background(), s, "wxa", "sec", CodeSlow)
	}()
	for s.CodeCalls(CodeSlow) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a slow request outlived Close")
	}
	s.Close() // a second Close is harmless
}

func TestOtherPathsReachTheSandbox(t *testing.T) {
	s := New(t)
	resp, err := http.Get(s.URL + "/cgi-bin/unknown")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("status %d, want the sandbox's 404", resp.StatusCode)
	}
	if s.Calls("/cgi-bin/unknown") != 1 {
		t.Error("the call was not counted")
	}
}

func TestConcurrentExchangesOfOneCode(t *testing.T) {
	s := New(t)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errcodes = map[int]int{}
	)
	for range 20 {
		wg.Go(func() {
			// Not login: t.Fatal must not be called off the test's goroutine.
			_, body, err := exchange(context.Background(), s, "wxa", "sec", "carol")
			var a answer
			if err != nil || json.Unmarshal([]byte(body), &a) != nil {
				t.Errorf("exchange failed: %v, body %q", err, body)
				return
			}
			mu.Lock()
			errcodes[a.Errcode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if errcodes[0] != 1 || errcodes[40163] != 19 {
		t.Errorf("errcodes = %v, want one login and 19 × 40163", errcodes)
	}
}
