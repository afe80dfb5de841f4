package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
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

// Helpers of the Douyin, Alipay and Baidu tests.

// The apps of the tests. Their keys are the sandbox's (made once per test
// binary), which the fake platform holds too.
func douyinApp(base string) App {
	return App{AppID: "tt1234567890abcdef", Secret: testSecret, Kind: Douyin, APIBase: base, PrivateKey: fakeplatform.SandboxKeys().App}
}

func alipayApp(base string) App {
	k := fakeplatform.SandboxKeys()
	return App{AppID: "2021000000000001", Kind: Alipay, APIBase: base, PrivateKey: k.App, PlatformPublicKey: &k.Alipay.PublicKey}
}

func baiduApp(base string) App {
	return App{AppID: "BaiduAppKey0000001", Secret: testSecret, Kind: Baidu, APIBase: base}
}

// wrongKey is a key no platform knows, made once.
var wrongKey = sync.OnceValue(fakeplatform.NewKey)

// sent is one request a capturing transport saw, in full.
type sent struct {
	method, host, path string
	query              url.Values
	header             http.Header
	body               []byte
}

// form is the request's form body.
func (s sent) form(t *testing.T) url.Values {
	t.Helper()
	f, err := url.ParseQuery(string(s.body))
	if err != nil {
		t.Fatalf("body %q is not a form: %v", s.body, err)
	}
	return f
}

// json decodes the request's JSON body.
func (s sent) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.body, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", s.body, err)
	}
	return m
}

// capturingClient returns a Client whose transport records every request
// and answers it with answer (status 0 means 200), and the list of requests.
func capturingClient(answer func(s sent) (int, string)) (*Client, func() []sent) {
	var (
		mu  sync.Mutex
		log []sent
	)
	client := &Client{RetryDelay: time.Millisecond, HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		var body []byte
		if req.Body != nil {
			body, _ = io.ReadAll(req.Body)
			req.Body.Close()
		}
		s := sent{req.Method, req.URL.Host, req.URL.Path, req.URL.Query(), req.Header.Clone(), body}
		mu.Lock()
		log = append(log, s)
		mu.Unlock()
		status, text := answer(s)
		rec := httptest.NewRecorder()
		if status != 0 {
			rec.WriteHeader(status)
		}
		io.WriteString(rec, text)
		return rec.Result(), nil
	})}}
	return client, func() []sent {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(log)
	}
}

// canned answers every request with text.
func canned(text string) func(sent) (int, string) {
	return func(sent) (int, string) { return 0, text }
}

// wantFields asserts a decoded JSON or form body has exactly these fields.
func wantFields(t *testing.T, what string, got map[string]string, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s has fields %v, want exactly %v", what, got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s %s = %q, want %q", what, k, got[k], v)
		}
	}
}

func stringFields(t *testing.T, m map[string]any) map[string]string {
	t.Helper()
	out := make(map[string]string, len(m))
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			t.Errorf("field %s is %T, want a string", k, v)
		}
		out[k] = s
	}
	return out
}

func formFields(f url.Values) map[string]string {
	out := make(map[string]string, len(f))
	for k := range f {
		out[k] = f.Get(k)
	}
	return out
}

// noKeyText asserts err's texts hold no PEM and no key material.
func noKeyText(t *testing.T, err error, keys ...*rsa.PrivateKey) {
	t.Helper()
	for _, k := range keys {
		pemText := string(fakeplatform.PrivateKeyPEM(k))
		body := strings.Split(pemText, "\n")[1] // the first line of base64
		if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), "BEGIN") {
			t.Errorf("error %q shows a key", err)
		}
	}
}

// TestOtherPlatformsReachTheirDefaultHosts: with no api_base, each API goes
// to its platform's own host.
func TestOtherPlatformsReachTheirDefaultHosts(t *testing.T) {
	tests := []struct {
		name string
		app  App
		call func(c *Client, app App) error
		want []string // host+path of each request
	}{
		{"douyin login", douyinApp(""), func(c *Client, app App) error {
			_, err := c.Code2Session(context.Background(), app, "alice")
			return err
		}, []string{"developer.toutiao.com/api/apps/v2/jscode2session"}},
		{"douyin phone", douyinApp(""), func(c *Client, app App) error {
			_, err := (&Service{Client: c}).PhoneNumber(context.Background(), app, "p")
			return err
		}, []string{"open.douyin.com/oauth/client_token/", "open.douyin.com/api/apps/v1/get_phonenumber_info/"}},
		{"douyin text", douyinApp(""), func(c *Client, app App) error {
			_, err := (&Service{Client: c}).CheckText(context.Background(), app, "o", "hi")
			return err
		}, []string{"developer.toutiao.com/api/apps/v2/token", "developer.toutiao.com/api/v2/tags/text/antidirt"}},
		{"alipay login", alipayApp(""), func(c *Client, app App) error {
			_, err := c.Code2Session(context.Background(), app, "alice")
			return err
		}, []string{"openapi.alipay.com/gateway.do"}},
		{"baidu login", baiduApp(""), func(c *Client, app App) error {
			_, err := c.Code2Session(context.Background(), app, "alice")
			return err
		}, []string{"spapi.baidu.com/oauth/jscode2sessionkey"}},
		{"baidu text", baiduApp(""), func(c *Client, app App) error {
			_, err := (&Service{Client: c}).CheckText(context.Background(), app, "o", "hi")
			return err
		}, []string{"openapi.baidu.com/oauth/2.0/token", "openapi.baidu.com/rest/2.0/smartapp/riskDetection/v2/syncCheckText"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every answer is garbage: only where the requests go matters.
			client, log := capturingClient(func(s sent) (int, string) {
				if strings.Contains(s.path, "token") {
					return 0, `{"err_no":0,"data":{"access_token":"tok-1","expires_in":7200,"error_code":0},"access_token":"tok-1","expires_in":7200}`
				}
				return 0, "{}"
			})
			tt.call(client, tt.app)
			var got []string
			for _, s := range log() {
				if s.method != http.MethodPost {
					t.Errorf("%s %s: want POST", s.method, s.path)
				}
				got = append(got, s.host+s.path)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("requests went to %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAPIBaseCoversEveryHost: api_base replaces every host of a platform.
func TestAPIBaseCoversEveryHost(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := douyinApp(srv.URL)
	if _, err := (&Service{Client: fastClient()}).PhoneNumber(context.Background(), app, "p1"); err != nil {
		t.Fatal(err)
	}
	if srv.Calls("/oauth/client_token/") != 1 || srv.Calls("/api/apps/v1/get_phonenumber_info/") != 1 {
		t.Error("the open.douyin.com APIs did not go to api_base")
	}
}

// jsonOf is v as JSON text.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}
