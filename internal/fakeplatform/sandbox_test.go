package fakeplatform

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
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
	h := Sandbox()
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
	h := Sandbox()
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
	// busy never recovers, unlike the scripted busyonce.
	if _, body := get(t, h, code2SessionURL("wxapp", CodeBusy)); body["errcode"] != -1.0 {
		t.Errorf("second busy call answered %v", body)
	}
}

func TestTransport(t *testing.T) {
	client := &http.Client{Transport: Sandbox().Transport()}
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
	if _, err := Sandbox().Transport().RoundTrip(req); !errors.Is(err, context.Canceled) {
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

// post calls the handler with a POST and decodes its JSON answer.
func post(t *testing.T, h http.Handler, target, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	h.ServeHTTP(rec, req)
	var answer map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("POST %s: answer %q is not JSON: %v", target, rec.Body, err)
	}
	return rec.Code, answer
}

func postHandlerJSON(t *testing.T, h http.Handler, target string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	status, answer := post(t, h, target, "application/json", b)
	if status != http.StatusOK {
		t.Fatalf("POST %s: status %d", target, status)
	}
	return answer
}

// multipartBody is a form with fields and, unless media is nil, the file
// "media".
func multipartBody(fields map[string]string, media []byte) (string, []byte) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		w.WriteField(k, v)
	}
	if media != nil {
		f, _ := w.CreateFormFile("media", "avatar.png")
		f.Write(media)
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func TestHandlerTokens(t *testing.T) {
	h := Sandbox()
	token := AccessToken("wxapp")
	if !strings.HasPrefix(token, "sandbox-token-") || !idCharset.MatchString(token) || token != AccessToken("wxapp") || token == AccessToken("wxother") {
		t.Errorf("AccessToken = %q: want a deterministic sandbox-token- per app", token)
	}

	answer := postHandlerJSON(t, h, "/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential", "appid": "wxapp", "secret": "any", "force_refresh": false})
	if answer["access_token"] != token || answer["expires_in"] != float64(TokenExpiresIn) || answer["errcode"] != nil {
		t.Errorf("stable_token answered %v", answer)
	}
	_, answer = get(t, h, "/api/getToken?grant_type=client_credential&appid=wxapp&secret=any")
	if answer["access_token"] != token || answer["expires_in"] != float64(TokenExpiresIn) {
		t.Errorf("getToken answered %v", answer)
	}

	for _, tt := range []struct {
		name    string
		answer  map[string]any
		errcode float64
	}{
		{"no appid", postHandlerJSON(t, h, "/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential"}), 40013},
		{"wrong grant_type", postHandlerJSON(t, h, "/cgi-bin/stable_token", map[string]any{"grant_type": "x", "appid": "wxapp"}), 40002},
		{"not JSON", func() map[string]any {
			_, a := post(t, h, "/cgi-bin/stable_token", "application/json", []byte("{"))
			return a
		}(), 47001},
		{"qq no appid", func() map[string]any { _, a := get(t, h, "/api/getToken?grant_type=client_credential"); return a }(), 40013},
	} {
		if tt.answer["errcode"] != tt.errcode {
			t.Errorf("%s: answered %v, want errcode %v", tt.name, tt.answer, tt.errcode)
		}
	}

	// The classic token API is not faked: clients must not use it.
	if status, _ := get(t, h, "/cgi-bin/token?grant_type=client_credential&appid=wxapp&secret=any"); status != http.StatusNotFound {
		t.Errorf("/cgi-bin/token answered %d, want 404", status)
	}
}

func TestHandlerTextCheck(t *testing.T) {
	h := Sandbox()
	check := func(content string) map[string]any {
		return postHandlerJSON(t, h, "/wxa/msg_sec_check?access_token=tok", map[string]any{"version": 2, "openid": "o1", "scene": 1, "content": content})
	}
	for content, want := range map[string][2]any{
		"Band":          {"pass", float64(PassLabel)},
		"so Risky":      {"risky", float64(RiskyLabel)},
		"risky content": {"risky", float64(RiskyLabel)},
	} {
		answer := check(content)
		result, _ := answer["result"].(map[string]any)
		if answer["errcode"] != 0.0 || result["suggest"] != want[0] || result["label"] != want[1] {
			t.Errorf("%q: answered %v, want %v", content, answer, want)
		}
	}

	for _, tt := range []struct {
		name    string
		target  string
		body    any
		errcode float64
	}{
		{"no token", "/wxa/msg_sec_check", map[string]any{"version": 2, "openid": "o1", "content": "x"}, 40001},
		{"version 1", "/wxa/msg_sec_check?access_token=tok", map[string]any{"content": "x"}, 47001},
		{"no openid", "/wxa/msg_sec_check?access_token=tok", map[string]any{"version": 2, "content": "x"}, 40003},
		{"qq risky", "/api/json/security/MsgSecCheck?access_token=tok", map[string]any{"appid": "1", "content": "RISKY"}, 87014},
		{"qq pass", "/api/json/security/MsgSecCheck?access_token=tok", map[string]any{"appid": "1", "content": "fine"}, 0},
		{"qq no appid", "/api/json/security/MsgSecCheck?access_token=tok", map[string]any{"content": "fine"}, 40013},
		{"qq no token", "/api/json/security/MsgSecCheck", map[string]any{"appid": "1", "content": "fine"}, 40001},
	} {
		if answer := postHandlerJSON(t, h, tt.target, tt.body); answer["errcode"] != tt.errcode {
			t.Errorf("%s: answered %v, want errcode %v", tt.name, answer, tt.errcode)
		}
	}
}

func TestHandlerImageCheck(t *testing.T) {
	h := Sandbox()
	for _, path := range []string{"/wxa/img_sec_check", "/api/json/security/ImgSecCheck"} {
		for _, tt := range []struct {
			name    string
			token   string
			media   []byte
			errcode float64
		}{
			{"clean", "tok", []byte("\x89PNG\r\n\x1a\nclean"), 0},
			{"risky", "tok", []byte("\x89PNG\r\n\x1a\n..RiSkY.."), 87014},
			{"no media", "tok", nil, 41005},
			{"no token", "", []byte("clean"), 40001},
		} {
			target := path
			if tt.token != "" {
				target += "?access_token=" + tt.token
			}
			contentType, body := multipartBody(map[string]string{"appid": "1"}, tt.media)
			status, answer := post(t, h, target, contentType, body)
			if status != http.StatusOK || answer["errcode"] != tt.errcode {
				t.Errorf("%s %s: answered %d %v, want errcode %v", path, tt.name, status, answer, tt.errcode)
			}
		}
		// Not multipart at all.
		if _, answer := post(t, h, path+"?access_token=tok", "image/png", []byte("risky")); answer["errcode"] != 41005.0 {
			t.Errorf("%s raw body: answered %v, want 41005", path, answer)
		}
	}
}

func TestHandlerPhoneNumber(t *testing.T) {
	h := Sandbox()
	for range 2 { // sandbox phone codes are reusable
		answer := postHandlerJSON(t, h, "/wxa/business/getuserphonenumber?access_token=tok", map[string]any{"code": "alice"})
		info, _ := answer["phone_info"].(map[string]any)
		watermark, _ := info["watermark"].(map[string]any)
		if answer["errcode"] != 0.0 || info["phoneNumber"] != PhoneNumber || info["purePhoneNumber"] != PhoneNumber ||
			info["countryCode"] != PhoneCountryCode || watermark["timestamp"] == nil {
			t.Errorf("answered %v", answer)
		}
	}
	for _, code := range []string{CodeInvalid, CodeUsed, ""} {
		if answer := postHandlerJSON(t, h, "/wxa/business/getuserphonenumber?access_token=tok", map[string]any{"code": code}); answer["errcode"] != 40029.0 {
			t.Errorf("code %q: answered %v, want 40029", code, answer)
		}
	}
	if answer := postHandlerJSON(t, h, "/wxa/business/getuserphonenumber", map[string]any{"code": "alice"}); answer["errcode"] != 40001.0 {
		t.Errorf("no token: answered %v, want 40001", answer)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/wxa/business/getuserphonenumber?access_token=tok", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("GET answered %d, want the 404 of an unknown API", rec.Code)
	}
}

func TestTransportPosts(t *testing.T) {
	client := &http.Client{Transport: Sandbox().Transport()}
	resp, err := client.Post("https://api.weixin.qq.invalid/wxa/msg_sec_check?access_token=tok", "application/json",
		strings.NewReader(`{"version":2,"openid":"o1","scene":1,"content":"risky"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct {
		Result struct{ Suggest string } `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Result.Suggest != "risky" {
		t.Errorf("answered %+v, %v", answer, err)
	}
}

func TestWebAccessTokenValue(t *testing.T) {
	token := WebAccessToken("wxapp", "alice")
	// The plugin's client accepts [A-Za-z0-9._~+/=-], at most 1024 bytes.
	if !strings.HasPrefix(token, "sandbox-web-") || !regexp.MustCompile(`^[A-Za-z0-9._-]+$`).MatchString(token) || len(token) > 1024 {
		t.Errorf("WebAccessToken = %q", token)
	}
	if len(WebAccessToken("wx1234567890abcdef", strings.Repeat("c", 256))) > 1024 {
		t.Error("a token for a 256-byte code is over 1024 bytes")
	}
	if token != WebAccessToken("wxapp", "alice") || token == WebAccessToken("wxother", "alice") || token == WebAccessToken("wxapp", "bob") {
		t.Error("web tokens are not deterministic per (appid, code)")
	}
	for _, code := range []string{"alice", "用户", "a.b|c", ""} {
		appid, got, ok := parseWebAccessToken(WebAccessToken("wxapp", code))
		if !ok || appid != "wxapp" || got != code {
			t.Errorf("code %q: parsed %q %q %v", code, appid, got, ok)
		}
	}
	for _, bad := range []string{"", token + "x", strings.Replace(token, "sandbox-web-", "sandbox-wab-", 1),
		"sandbox-web-d3hhcHA.Ym9i." + token[strings.LastIndex(token, ".")+1:], // another code, alice's check
		AccessToken("wxapp"), "sandbox-web-a.b", "sandbox-web-!.!.!"} {
		if _, _, ok := parseWebAccessToken(bad); ok {
			t.Errorf("%q parsed as a web token", bad)
		}
	}
}

func TestNickname(t *testing.T) {
	if got := Nickname("alice"); got != "Sandbox alice" {
		t.Errorf("Nickname(alice) = %q", got)
	}
	if got := Nickname("小明"); got != "Sandbox 小明" {
		t.Errorf("Nickname(小明) = %q", got)
	}
	for _, code := range []string{strings.Repeat("x", 33), "a\nb", "\xff", ""} {
		got := Nickname(code)
		if got != Nickname(code) || !strings.HasPrefix(got, "Sandbox ") || len(got) != len("Sandbox ")+8 || !idCharset.MatchString(got[8:]) {
			t.Errorf("Nickname(%q) = %q", code, got)
		}
	}
}

func webTokenURL(appid, code string) string {
	q := url.Values{"appid": {appid}, "secret": {"any"}, "code": {code}, "grant_type": {"authorization_code"}}
	return "/sns/oauth2/access_token?" + q.Encode()
}

func userInfoURL(token, openid string) string {
	q := url.Values{"access_token": {token}, "openid": {openid}, "lang": {"zh_CN"}}
	return "/sns/userinfo?" + q.Encode()
}

func TestHandlerWebLogin(t *testing.T) {
	h := Sandbox()
	for range 2 { // web codes are reusable in the sandbox
		status, body := get(t, h, webTokenURL("wxweb", "alice"))
		want := map[string]any{
			"access_token": WebAccessToken("wxweb", "alice"),
			"expires_in":   float64(TokenExpiresIn),
			"openid":       OpenID("wxweb", "alice"),
			"scope":        WebScope,
			"unionid":      UnionID("alice"),
		}
		for k, v := range want {
			if body[k] != v {
				t.Errorf("%s = %v, want %v", k, body[k], v)
			}
		}
		if refresh, _ := body["refresh_token"].(string); status != http.StatusOK || refresh == "" || refresh == want["access_token"] {
			t.Errorf("got %d %v", status, body)
		}
	}

	status, body := get(t, h, userInfoURL(WebAccessToken("wxweb", "alice"), OpenID("wxweb", "alice")))
	want := map[string]any{"openid": OpenID("wxweb", "alice"), "nickname": "Sandbox alice", "headimgurl": "", "unionid": UnionID("alice")}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("userinfo %s = %v, want %v", k, body[k], v)
		}
	}
	if status != http.StatusOK || body["errcode"] != nil {
		t.Errorf("userinfo answered %d %v", status, body)
	}

	for _, tt := range []struct {
		name    string
		target  string
		errcode float64
	}{
		{"invalid", webTokenURL("wxweb", CodeInvalid), 40029},
		{"used", webTokenURL("wxweb", CodeUsed), 40163},
		{"blocked", webTokenURL("wxweb", CodeBlocked), 40226},
		{"busy", webTokenURL("wxweb", CodeBusy), -1},
		{"limited", webTokenURL("wxweb", CodeLimited), 45011},
		{"empty code", webTokenURL("wxweb", ""), 41008},
		{"missing appid", webTokenURL("", "alice"), 40013},
		{"missing grant_type", "/sns/oauth2/access_token?appid=wxweb&code=alice", 40002},
		{"userinfo without a token", userInfoURL("", OpenID("wxweb", "alice")), 40001},
		{"userinfo with a made-up token", userInfoURL("made-up", OpenID("wxweb", "alice")), 40001},
		{"userinfo with the app's token", userInfoURL(AccessToken("wxweb"), OpenID("wxweb", "alice")), 40001},
		{"userinfo without openid", userInfoURL(WebAccessToken("wxweb", "alice"), ""), 41009},
		{"userinfo with another openid", userInfoURL(WebAccessToken("wxweb", "alice"), OpenID("wxweb", "bob")), 40003},
		{"userinfo with another app's openid", userInfoURL(WebAccessToken("wxweb", "alice"), OpenID("wxother", "alice")), 40003},
	} {
		status, body := get(t, h, tt.target)
		if status != http.StatusOK || body["errcode"] != tt.errcode {
			t.Errorf("%s: got %d %v, want errcode %v", tt.name, status, body, tt.errcode)
		}
	}
}

// authorize calls handler h with GET target and returns the recording.
func authorize(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// authorizeQuery is an authorize page's query as the browser sends it:
// without AuthorizeURL's "#wechat_redirect", a fragment browsers keep to
// themselves.
func authorizeQuery(redirectURI string, extra ...string) string {
	q := "appid=wxweb&redirect_uri=" + url.QueryEscape(redirectURI) + "&response_type=code&scope=snsapi_userinfo&state=Abc123"
	for _, e := range extra {
		q += "&" + e
	}
	return q
}

func TestAuthorize(t *testing.T) {
	const callback = "https://site.test/wx/web/callback"
	tests := []struct {
		name   string
		target string
		want   string // the Location
	}{
		{"default user", "/connect/oauth2/authorize?" + authorizeQuery(callback), callback + "?code=alice&state=Abc123"},
		{"sandbox_user", "/connect/qrconnect?" + authorizeQuery(callback, "sandbox_user=bob"), callback + "?code=bob&state=Abc123"},
		{"empty sandbox_user", "/connect/qrconnect?" + authorizeQuery(callback, "sandbox_user="), callback + "?code=alice&state=Abc123"},
		{"encoded user", "/connect/oauth2/authorize?" + authorizeQuery(callback, "sandbox_user=%E5%B0%8F+m%26"), callback + "?code=%E5%B0%8F+m%26&state=Abc123"},
		{"query kept", "/connect/oauth2/authorize?" + authorizeQuery(callback+"?next=%2Fa%3Fb&x=1&flag"), callback + "?next=%2Fa%3Fb&x=1&flag&code=alice&state=Abc123"},
		{"old code and state dropped", "/connect/oauth2/authorize?" + authorizeQuery(callback+"?code=old&x=1&state=old&%63ode=old2"), callback + "?x=1&code=alice&state=Abc123"},
		{"fragment kept", "/connect/oauth2/authorize?" + authorizeQuery("http://127.0.0.1:8080/cb?x=1#frag"), "http://127.0.0.1:8080/cb?x=1&code=alice&state=Abc123#frag"},
		{"any path (the plugin's copy)", "/wx/web/sandbox/connect/oauth2/authorize?" + authorizeQuery(callback), callback + "?code=alice&state=Abc123"},
		{"failure code", "/connect/oauth2/authorize?" + authorizeQuery(callback, "sandbox_user=blocked"), callback + "?code=blocked&state=Abc123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var handlers = map[string]http.Handler{"Sandbox": Sandbox(), "Authorize": http.HandlerFunc(Sandbox().Authorize)}
			for hname, h := range handlers {
				if hname == "Sandbox" && strings.HasPrefix(tt.target, "/wx/") {
					continue // not one of the fake's paths
				}
				rec := authorize(h, tt.target)
				if rec.Code != http.StatusFound || rec.Header().Get("Location") != tt.want {
					t.Errorf("%s: got %d %q, want 302 %q", hname, rec.Code, rec.Header().Get("Location"), tt.want)
				}
				if rec.Header().Get("Cache-Control") != "no-store" {
					t.Errorf("%s: the redirect may be cached", hname)
				}
			}
		})
	}
}

func TestAuthorizeRefusals(t *testing.T) {
	const callback = "https://site.test/cb"
	valid := url.Values{"appid": {"wxweb"}, "redirect_uri": {callback}, "response_type": {"code"}, "scope": {"snsapi_base"}, "state": {"S1"}}
	tests := []struct {
		name, key, value string // value "" deletes the key
	}{
		{"no appid", "appid", ""},
		{"bad appid", "appid", "wx web"},
		{"no redirect_uri", "redirect_uri", ""},
		{"relative redirect_uri", "redirect_uri", "/cb"},
		{"javascript redirect_uri", "redirect_uri", "javascript:alert(1)"},
		{"ftp redirect_uri", "redirect_uri", "ftp://site.test/cb"},
		{"no response_type", "response_type", ""},
		{"token response_type", "response_type", "token"},
		{"no scope", "scope", ""},
		{"bad scope", "scope", "snsapi_all"},
		{"no state", "state", ""},
		{"state with a dash", "state", "a-b"},
		{"state too long", "state", strings.Repeat("s", 129)},
		{"sandbox_user too long", "sandbox_user", strings.Repeat("u", 257)},
	}
	for _, tt := range tests {
		q := url.Values{}
		for k, v := range valid {
			q[k] = v
		}
		if tt.value == "" {
			q.Del(tt.key)
		} else {
			q.Set(tt.key, tt.value)
		}
		rec := authorize(http.HandlerFunc(Sandbox().Authorize), "/connect/oauth2/authorize?"+q.Encode())
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" || !strings.Contains(rec.Body.String(), "sandbox authorize page:") {
			t.Errorf("%s: got %d %q", tt.name, rec.Code, rec.Body)
		}
	}
	if rec := authorize(http.HandlerFunc(Sandbox().Authorize), "/connect/oauth2/authorize?"+valid.Encode()); rec.Code != http.StatusFound {
		t.Errorf("the valid query answered %d %q", rec.Code, rec.Body)
	}

	rec := httptest.NewRecorder()
	Sandbox().Authorize(rec, httptest.NewRequest(http.MethodPost, "/connect/oauth2/authorize?"+valid.Encode(), nil))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" {
		t.Errorf("POST answered %d", rec.Code)
	}
}

// TestWebLoginThroughTheSandbox: the code the authorize page redirects with
// exchanges for the same person as the mini-program login with that code.
func TestWebLoginThroughTheSandbox(t *testing.T) {
	h := Sandbox()
	rec := authorize(h, "/connect/oauth2/authorize?"+authorizeQuery("https://site.test/cb", "sandbox_user=carol"))
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	code := loc.Query().Get("code")
	_, web := get(t, h, webTokenURL("wxweb", code))
	_, mini := get(t, h, code2SessionURL("wxmini", code))
	if web["unionid"] != UnionID("carol") || mini["unionid"] != web["unionid"] || web["openid"] == mini["openid"] {
		t.Errorf("web %v, mini program %v", web, mini)
	}
	token, _ := web["access_token"].(string)
	openid, _ := web["openid"].(string)
	if _, info := get(t, h, userInfoURL(token, openid)); info["unionid"] != UnionID("carol") || info["nickname"] != "Sandbox carol" {
		t.Errorf("userinfo %v", info)
	}
}
