package sandbox

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"testing"
	"time"
)

var idCharset = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestIdentities(t *testing.T) {
	for _, code := range []string{"alice", "bob", "", "用户", "a|b"} {
		openid := OpenID("wxapp", code)
		if len(openid) != 28 || openid[0] != 'o' || !idCharset.MatchString(openid) {
			t.Errorf("OpenID(%q) = %q", code, openid)
		}
		unionid := UnionID(code)
		if len(unionid) != 29 || unionid[0] != 'u' || !idCharset.MatchString(unionid) {
			t.Errorf("UnionID(%q) = %q", code, unionid)
		}
		key, err := base64.StdEncoding.DecodeString(SessionKey("wxapp", code))
		if err != nil || len(key) != 16 {
			t.Errorf("SessionKey(%q) is not base64 of 16 bytes", code)
		}
	}
	if OpenID("wxapp", "alice") != OpenID("wxapp", "alice") || SessionKey("wxapp", "alice") != SessionKey("wxapp", "alice") {
		t.Error("identities are not deterministic")
	}
	if OpenID("wxapp", "alice") == OpenID("wxother", "alice") {
		t.Error("two apps give one code the same openid")
	}
	if OpenID("wxapp", "alice") == OpenID("wxapp", "bob") || UnionID("alice") == UnionID("bob") {
		t.Error("two codes give the same identity")
	}
	if SessionKey("wxapp", "alice") == SessionKey("wxother", "alice") {
		t.Error("two apps give one code the same session_key")
	}
}

// get calls the handler and decodes its JSON answer.
func get(t *testing.T, h http.Handler, target string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("GET %s: answer %q is not JSON: %v", target, rec.Body, err)
	}
	return rec.Code, body
}

func code2SessionURL(appid, code string) string {
	q := url.Values{"appid": {appid}, "secret": {"any"}, "js_code": {code}, "grant_type": {"authorization_code"}}
	return "http://api.q.qq.com/sns/jscode2session?" + q.Encode()
}

func TestHandlerCode2Session(t *testing.T) {
	h := NewHandler()
	status, body := get(t, h, code2SessionURL("wxapp", "alice"))
	want := map[string]any{
		"openid":      OpenID("wxapp", "alice"),
		"unionid":     UnionID("alice"),
		"session_key": SessionKey("wxapp", "alice"),
	}
	if status != http.StatusOK || len(body) != len(want) {
		t.Fatalf("got %d %v, want 200 %v", status, body, want)
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v, want %v", k, body[k], v)
		}
	}
}

func TestHandlerFailures(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		status  int
		errcode float64
	}{
		{"invalid", code2SessionURL("wxapp", CodeInvalid), 200, 40029},
		{"used", code2SessionURL("wxapp", CodeUsed), 200, 40163},
		{"blocked", code2SessionURL("wxapp", CodeBlocked), 200, 40226},
		{"busy", code2SessionURL("wxapp", CodeBusy), 200, -1},
		{"limited", code2SessionURL("wxapp", CodeLimited), 200, 45011},
		{"empty code", code2SessionURL("wxapp", ""), 200, 40029},
		{"missing appid", code2SessionURL("", "alice"), 200, 40013},
		{"missing grant_type", "/sns/jscode2session?appid=wxapp&js_code=alice", 200, 40002},
		{"unknown path", "/cgi-bin/nothing", 404, 404},
	}
	h := NewHandler()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, h, tt.target)
			if status != tt.status || body["errcode"] != tt.errcode {
				t.Errorf("got %d %v, want %d errcode %v", status, body, tt.status, tt.errcode)
			}
			if msg, _ := body["errmsg"].(string); msg == "" {
				t.Error("errmsg is empty")
			}
		})
	}
	// busy never recovers, unlike platformtest's busyonce.
	if _, body := get(t, h, code2SessionURL("wxapp", CodeBusy)); body["errcode"] != -1.0 {
		t.Errorf("second busy call answered %v", body)
	}
}

func TestTransport(t *testing.T) {
	client := &http.Client{Transport: Transport()}
	// A host that cannot resolve: any dial would fail.
	resp, err := client.Get("https://api.weixin.qq.invalid" + code2SessionURL("wxapp", "alice")[len("http://api.q.qq.com"):])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || body["openid"] != OpenID("wxapp", "alice") {
		t.Errorf("got %d %v", resp.StatusCode, body)
	}
	if resp.Request == nil || resp.Request.URL.Host != "api.weixin.qq.invalid" {
		t.Error("the response does not point back to the request")
	}

	resp, err = client.Post("http://x.invalid/unknown", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown path answered %d, want 404", resp.StatusCode)
	}
}

func TestTransportHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, code2SessionURL("wxapp", "alice"), nil)
	if _, err := Transport().RoundTrip(req); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: got %v, want context.Canceled", err)
	}

	// A handler that blocks until its request's context ends.
	started := make(chan struct{})
	blocking := handlerTransport{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-started
		cancel()
	}()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, "http://x.invalid/", nil)
	done := make(chan error, 1)
	go func() {
		_, err := blocking.RoundTrip(req)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip did not return after its context was cancelled")
	}
}

func TestTransportSurvivesHandlerPanic(t *testing.T) {
	panicking := handlerTransport{handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})}
	req, _ := http.NewRequest(http.MethodGet, "http://x.invalid/", nil)
	if _, err := panicking.RoundTrip(req); !errors.Is(err, errHandlerPanicked) {
		t.Errorf("got %v, want errHandlerPanicked", err)
	}
}
