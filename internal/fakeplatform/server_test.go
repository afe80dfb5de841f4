package fakeplatform

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"
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
	s := NewServer(t)
	a := login(t, s, "wxa", "sec", "alice")
	if a.OpenID != OpenID("wxa", "alice") || a.UnionID != UnionID("alice") {
		t.Errorf("identity %+v is not the sandbox's", a)
	}
	if a.SessionKey == SessionKey("wxa", "alice") || a.SessionKey != s.LastSessionKey("wxa", a.OpenID) {
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
	s := NewServer(t)
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
		{code: CodeBusy, status: 200, check: func(a answer) bool { return a.Errcode == -1 }},
		{code: CodeLimited, status: 200, check: func(a answer) bool { return a.Errcode == 45011 }},
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
	s := NewServer(t)
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
	s := NewServer(t)
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
	s := NewServer(t)
	s.SetDelay(50 * time.Millisecond)
	start := time.Now()
	login(t, s, "wxa", "sec", "alice")
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond {
		t.Errorf("answered after %v, before the 50ms delay", elapsed)
	}
}

func TestCloseReleasesWaitingRequests(t *testing.T) {
	s := NewServer(t)
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
	s := NewServer(t)
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
	s := NewServer(t)
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

// call sends a request to s and decodes the JSON answer; it returns the
// status and the answer (nil when the body is not JSON).
func call(t *testing.T, s *Server, method, path string, query url.Values, contentType string, body []byte) (int, map[string]any) {
	t.Helper()
	target := s.URL + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &answer)
	return resp.StatusCode, answer
}

func postJSON(t *testing.T, s *Server, path, token string, body any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	var q url.Values
	if token != "" {
		q = url.Values{"access_token": {token}}
	}
	status, answer := call(t, s, http.MethodPost, path, q, "application/json", b)
	if status != http.StatusOK {
		t.Fatalf("POST %s: status %d", path, status)
	}
	return answer
}

func fetchToken(t *testing.T, s *Server, appid, secret string) string {
	t.Helper()
	answer := postJSON(t, s, stableTokenPath, "", map[string]any{"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": false})
	token, _ := answer["access_token"].(string)
	if token == "" || answer["expires_in"] != float64(TokenExpiresIn) {
		t.Fatalf("stable_token answered %v", answer)
	}
	return token
}

func TestTokens(t *testing.T) {
	s := NewServer(t)
	s.AddApp("wxa", "right")
	first := fetchToken(t, s, "wxa", "right")
	second := fetchToken(t, s, "wxa", "right")
	if first == second {
		t.Error("two fetches gave the same token; the fake issues a fresh one each time")
	}
	_, answer := call(t, s, http.MethodGet, qqTokenPath, url.Values{"grant_type": {"client_credential"}, "appid": {"wxa"}, "secret": {"right"}}, "", nil)
	third, _ := answer["access_token"].(string)
	if third == "" {
		t.Fatalf("getToken answered %v", answer)
	}
	if got := s.Tokens(); !slices.Equal(got, []string{first, second, third}) {
		t.Errorf("Tokens = %q", got)
	}

	for _, tt := range []struct {
		appid, secret string
		errcode       float64
	}{{"wxa", "wrong", 40125}, {"wxunknown", "right", 40013}} {
		answer := postJSON(t, s, stableTokenPath, "", map[string]any{"grant_type": "client_credential", "appid": tt.appid, "secret": tt.secret})
		if answer["errcode"] != tt.errcode {
			t.Errorf("%s/%s: answered %v, want %v", tt.appid, tt.secret, answer, tt.errcode)
		}
	}
	if got := s.SecretsSeen(); !slices.Equal(got, []string{"right", "right", "right", "wrong", "right"}) {
		t.Errorf("SecretsSeen = %q, want the JSON and query secrets in order", got)
	}
	if s.Calls(stableTokenPath) != 4 || s.Calls(qqTokenPath) != 1 {
		t.Error("token calls were not counted")
	}

	// Earlier tokens stay valid until they are expired or revoked.
	check := func(token string) float64 {
		answer := postJSON(t, s, textCheckPath, token, map[string]any{"version": 2, "openid": "o1", "scene": 1, "content": "x"})
		errcode, _ := answer["errcode"].(float64)
		return errcode
	}
	if check(first) != 0 || check(second) != 0 {
		t.Error("a valid token was refused")
	}
	if check("") != 40001 || check("made-up") != 40001 {
		t.Error("a missing or unknown token was accepted")
	}
	s.ExpireTokens()
	fourth := fetchToken(t, s, "wxa", "right")
	if check(first) != 42001 || check(third) != 42001 || check(fourth) != 0 {
		t.Error("ExpireTokens did not expire exactly the tokens issued before it")
	}
	s.RevokeTokens()
	if check(fourth) != 40001 || check(fetchToken(t, s, "wxa", "right")) != 0 {
		t.Error("RevokeTokens did not revoke exactly the tokens issued before it")
	}
}

func TestTextChecks(t *testing.T) {
	s := NewServer(t)
	token := fetchToken(t, s, "wxa", "sec")
	for content, want := range map[string]string{"Band": "pass", "so risky": "risky", "Review me": "review", "risky review": "risky"} {
		answer := postJSON(t, s, textCheckPath, token, map[string]any{"version": 2, "openid": "o1", "scene": 1, "content": content})
		result, _ := answer["result"].(map[string]any)
		if result["suggest"] != want {
			t.Errorf("%q: answered %v, want %s", content, answer, want)
		}
	}
	if answer := postJSON(t, s, qqTextCheckPath, token, map[string]any{"appid": "1110", "content": "RISKY"}); answer["errcode"] != 87014.0 {
		t.Errorf("QQ risky: answered %v", answer)
	}
	postJSON(t, s, textCheckPath, "bad", map[string]any{"version": 2, "openid": "o1", "scene": 1, "content": "refused"})

	checks := s.TextChecks()
	if len(checks) != 5 {
		t.Fatalf("%d checks recorded, want 5 (not the refused one)", len(checks))
	}
	if last := checks[4]; last != (TextCheck{AppID: "1110", Content: "RISKY"}) {
		t.Errorf("QQ check recorded as %+v", last)
	}
	for _, c := range checks[:4] {
		if c.AppID != "wxa" || c.OpenID != "o1" || c.Scene != 1 || c.Version != 2 {
			t.Errorf("check recorded as %+v", c)
		}
	}
}

func TestImageChecksAndFailPath(t *testing.T) {
	s := NewServer(t)
	token := fetchToken(t, s, "wxa", "sec")
	upload := func(path string, media []byte) (int, map[string]any) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		w.WriteField("appid", "1110")
		f, _ := w.CreateFormFile("media", "avatar.png")
		f.Write(media)
		w.Close()
		return call(t, s, http.MethodPost, path, url.Values{"access_token": {token}}, w.FormDataContentType(), b.Bytes())
	}
	clean, risky := []byte("\x89PNG\r\n\x1a\n\x00\xff"), []byte("\x89PNG risky")
	if _, answer := upload(imageCheckPath, clean); answer["errcode"] != 0.0 {
		t.Errorf("clean: %v", answer)
	}
	if _, answer := upload(qqImageCheckPath, risky); answer["errcode"] != 87014.0 {
		t.Errorf("risky: %v", answer)
	}
	if got := s.ImageChecks(); len(got) != 2 || !bytes.Equal(got[0], clean) || !bytes.Equal(got[1], risky) {
		t.Errorf("ImageChecks = %q", got)
	}

	s.FailPath(imageCheckPath)
	if status, answer := upload(imageCheckPath, clean); status != http.StatusInternalServerError || answer != nil {
		t.Errorf("failing path answered %d %v, want an HTML 500", status, answer)
	}
	if status, _ := upload(qqImageCheckPath, clean); status != http.StatusOK {
		t.Error("FailPath failed another path")
	}
	s.HealPath(imageCheckPath)
	if status, _ := upload(imageCheckPath, clean); status != http.StatusOK {
		t.Error("HealPath did not heal")
	}
	if got := s.Calls(imageCheckPath); got != 3 {
		t.Errorf("Calls = %d, want 3 (failed calls count)", got)
	}
	if got := len(s.ImageChecks()); got != 4 {
		t.Errorf("%d image checks, want 4 (the failed one is not a check)", got)
	}
}

func TestPhoneNumbers(t *testing.T) {
	s := NewServer(t)
	token := fetchToken(t, s, "wxa", "sec")
	phone := func(code string) map[string]any {
		return postJSON(t, s, phonePath, token, map[string]any{"code": code})
	}
	info := func(answer map[string]any) map[string]any {
		i, _ := answer["phone_info"].(map[string]any)
		return i
	}

	first := info(phone("alice"))
	if first["phoneNumber"] != PhoneNumber || first["purePhoneNumber"] != PhoneNumber || first["countryCode"] != "86" {
		t.Errorf("phone_info = %v", first)
	}
	if wm, _ := first["watermark"].(map[string]any); wm["appid"] != "wxa" || wm["timestamp"] == nil {
		t.Errorf("watermark = %v", first["watermark"])
	}
	if answer := phone("alice"); answer["errcode"] != 40029.0 {
		t.Errorf("second use: %v, want 40029", answer)
	}
	if got := s.PhoneCalls("alice"); got != 2 {
		t.Errorf("PhoneCalls = %d", got)
	}
	if got := info(phone(PhoneCodeNumeric)); got["countryCode"] != 86.0 {
		t.Errorf("numeric: %v", got)
	}
	if got := info(phone(PhoneCodeIntl)); got["phoneNumber"] != IntlPhoneNumber || got["purePhoneNumber"] != IntlPurePhoneNumber || got["countryCode"] != IntlCountryCode {
		t.Errorf("intl: %v", got)
	}
	for code, errcode := range map[string]float64{CodeInvalid: 40029, CodeUsed: 40029, "": 40029, CodeBusy: -1} {
		for range 2 {
			if answer := phone(code); answer["errcode"] != errcode {
				t.Errorf("%q: %v, want %v", code, answer, errcode)
			}
		}
	}
	if answer := postJSON(t, s, phonePath, "", map[string]any{"code": "bob"}); answer["errcode"] != 40001.0 {
		t.Errorf("no token: %v", answer)
	}
	// A code refused for its token was not used.
	if got := info(phone("bob")); got["purePhoneNumber"] != PhoneNumber {
		t.Errorf("bob after a refused call: %v", got)
	}
}

// webExchange calls /sns/oauth2/access_token on s and decodes the answer
// (nil when it is not JSON).
func webExchange(t *testing.T, s *Server, appid, secret, code string) (int, map[string]any) {
	t.Helper()
	return call(t, s, http.MethodGet, webTokenPath, url.Values{"appid": {appid}, "secret": {secret}, "code": {code}, "grant_type": {"authorization_code"}}, "", nil)
}

func userInfo(t *testing.T, s *Server, token, openid string) map[string]any {
	t.Helper()
	status, answer := call(t, s, http.MethodGet, userInfoPath, url.Values{"access_token": {token}, "openid": {openid}, "lang": {"zh_CN"}}, "", nil)
	if status != http.StatusOK {
		t.Fatalf("userinfo: status %d", status)
	}
	return answer
}

func TestWebCodesSingleUse(t *testing.T) {
	s := NewServer(t)
	s.AddApp("wxweb", "sec")
	s.AddApp("wxqr", "sec")
	_, first := webExchange(t, s, "wxweb", "sec", "alice")
	token, _ := first["access_token"].(string)
	refresh, _ := first["refresh_token"].(string)
	if first["openid"] != OpenID("wxweb", "alice") || first["unionid"] != UnionID("alice") ||
		first["scope"] != "snsapi_userinfo" || first["expires_in"] != float64(7200) || token == "" || refresh == "" {
		t.Errorf("first exchange: %v", first)
	}
	if token == WebAccessToken("wxweb", "alice") {
		t.Error("the web token is the sandbox's, not a fresh one")
	}
	if _, again := webExchange(t, s, "wxweb", "sec", "alice"); again["errcode"] != 40163.0 {
		t.Errorf("second exchange: %v, want 40163", again)
	}
	_, other := webExchange(t, s, "wxqr", "sec", "alice")
	if other["unionid"] != first["unionid"] || other["openid"] == first["openid"] || other["access_token"] == token {
		t.Errorf("the same code in another app: %v", other)
	}
	if got := s.WebTokens(); !slices.Equal(got[:2], []string{token, refresh}) || len(got) != 4 {
		t.Errorf("WebTokens = %q", got)
	}
	if got := s.WebCodeCalls("alice"); got != 3 {
		t.Errorf("WebCodeCalls = %d, want 3", got)
	}
	for _, tt := range []struct {
		appid, secret string
		errcode       float64
	}{{"wxweb", "wrong", 40125}, {"wxunknown", "sec", 40013}} {
		if _, a := webExchange(t, s, tt.appid, tt.secret, "bob"); a["errcode"] != tt.errcode {
			t.Errorf("%s/%s: %v, want %v", tt.appid, tt.secret, a, tt.errcode)
		}
	}
	if _, a := webExchange(t, s, "wxweb", "sec", "bob"); a["errcode"] != nil {
		t.Errorf("a code refused for the credentials was used up: %v", a)
	}
	if got := s.SecretsSeen(); len(got) != 6 || got[3] != "wrong" {
		t.Errorf("SecretsSeen = %q", got)
	}
}

func TestWebScriptedCodes(t *testing.T) {
	s := NewServer(t)
	for _, tt := range []struct {
		code   string
		status int
		check  func(map[string]any) bool
	}{
		{CodeInvalid, 200, func(a map[string]any) bool { return a["errcode"] == 40029.0 }},
		{CodeUsed, 200, func(a map[string]any) bool { return a["errcode"] == 40163.0 }},
		{CodeBlocked, 200, func(a map[string]any) bool { return a["errcode"] == 40226.0 }},
		{CodeBusy, 200, func(a map[string]any) bool { return a["errcode"] == -1.0 }},
		{CodeLimited, 200, func(a map[string]any) bool { return a["errcode"] == 45011.0 }},
		{CodeQuota, 200, func(a map[string]any) bool { return a["errcode"] == 45009.0 }},
		{CodeHTTP500, 500, func(a map[string]any) bool { return a == nil }},
		{CodeGarbage, 200, func(a map[string]any) bool { return a == nil }},
		{CodeBadOpenID, 200, func(a map[string]any) bool { return a["openid"] == "../../etc" && a["access_token"] != nil }},
		{CodeNoUnion, 200, func(a map[string]any) bool { _, has := a["unionid"]; return !has && a["openid"] != nil }},
		{CodeBusyOnce, 200, func(a map[string]any) bool { return a["errcode"] == -1.0 }},
		{CodeBusyOnce, 200, func(a map[string]any) bool { return a["openid"] == OpenID("wxa", CodeBusyOnce) }},
		{"invalid~7", 200, func(a map[string]any) bool { return a["errcode"] == 40029.0 }}, // a code the authorize page issued
	} {
		status, answer := webExchange(t, s, "wxa", "sec", tt.code)
		if status != tt.status || !tt.check(answer) {
			t.Errorf("%s: %d %v", tt.code, status, answer)
		}
	}
	// nounion's profile has no unionid either.
	_, a := webExchange(t, s, "wxb", "sec", CodeNoUnion)
	token, _ := a["access_token"].(string)
	openid, _ := a["openid"].(string)
	if info := userInfo(t, s, token, openid); info["unionid"] != nil || info["nickname"] != WebNickname(CodeNoUnion) {
		t.Errorf("nounion profile: %v", info)
	}
}

func TestWebUserInfoTokens(t *testing.T) {
	s := NewServer(t)
	_, a := webExchange(t, s, "wxa", "sec", "dave")
	token, _ := a["access_token"].(string)
	openid := OpenID("wxa", "dave")
	info := userInfo(t, s, token, openid)
	want := map[string]any{"openid": openid, "nickname": "Web dave 🌐", "headimgurl": "https://thirdwx.qlogo.cn/mmopen/dave/132", "unionid": UnionID("dave")}
	for k, v := range want {
		if info[k] != v {
			t.Errorf("%s = %v, want %v", k, info[k], v)
		}
	}
	if WebNickname("dave") != want["nickname"] || WebHeadImgURL("dave") != want["headimgurl"] {
		t.Error("WebNickname or WebHeadImgURL differ from the answer")
	}
	for _, tt := range []struct {
		name          string
		token, openid string
		errcode       float64
	}{
		{"no token", "", openid, 40001},
		{"unknown token", "made-up", openid, 40001},
		{"sandbox token", WebAccessToken("wxa", "dave"), openid, 40001},
		{"no openid", token, "", 41009},
		{"another openid", token, OpenID("wxa", "erin"), 40003},
	} {
		if got := userInfo(t, s, tt.token, tt.openid); got["errcode"] != tt.errcode {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.errcode)
		}
	}
	// An app token is no web token.
	if got := userInfo(t, s, fetchToken(t, s, "wxa", "sec"), openid); got["errcode"] != 40001.0 {
		t.Errorf("app token: %v", got)
	}
	s.ExpireTokens()
	if got := userInfo(t, s, token, openid); got["errcode"] != 42001.0 {
		t.Errorf("after ExpireTokens: %v", got)
	}
	s.RevokeTokens()
	if got := userInfo(t, s, token, openid); got["errcode"] != 40001.0 {
		t.Errorf("after RevokeTokens: %v", got)
	}
	if s.Calls(userInfoPath) != 9 {
		t.Errorf("Calls = %d", s.Calls(userInfoPath))
	}
}

// visit requests an authorize page without following its redirect.
func visit(t *testing.T, s *Server, path string, q url.Values) (int, *url.URL) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.URL + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp.StatusCode, loc
}

func TestAuthorizePages(t *testing.T) {
	s := NewServer(t)
	s.AddApp("wxweb", "sec")
	page := func(scope string, extra ...string) url.Values {
		q := url.Values{"appid": {"wxweb"}, "redirect_uri": {"https://site.test/cb?next=%2F"}, "response_type": {"code"}, "scope": {scope}, "state": {"S1"}}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return q
	}

	status, loc := visit(t, s, authorizePath, page("snsapi_base"))
	first := loc.Query().Get("code")
	if status != http.StatusFound || loc.Host != "site.test" || loc.Query().Get("next") != "/" || loc.Query().Get("state") != "S1" ||
		WebUser(first) != ScriptedWebUser || first == ScriptedWebUser {
		t.Fatalf("got %d %s", status, loc)
	}
	_, loc = visit(t, s, authorizePath, page("snsapi_base"))
	second := loc.Query().Get("code")
	if second == first || WebUser(second) != ScriptedWebUser {
		t.Errorf("codes %q then %q: want fresh codes for one user", first, second)
	}
	_, loc = visit(t, s, qrConnectPath, page("snsapi_login", FakeUserParam, "frank"))
	qrCode := loc.Query().Get("code")
	s.SetAuthorizeCode("gina")
	_, loc = visit(t, s, authorizePath, page("snsapi_userinfo"))
	if WebUser(qrCode) != "frank" || WebUser(loc.Query().Get("code")) != "gina" {
		t.Errorf("codes %q, %q", qrCode, loc.Query().Get("code"))
	}
	s.SetAuthorizeCode("")

	// Refused: the wrong scope for the page, an unknown app.
	for _, tt := range []struct {
		path string
		q    url.Values
	}{
		{qrConnectPath, page("snsapi_userinfo")},
		{authorizePath, page("snsapi_login")},
		{authorizePath, page("snsapi_base", "appid", "wxunknown")},
		{authorizePath, page("snsapi_base", "state", "no-dashes")},
	} {
		if status, _ := visit(t, s, tt.path, tt.q); status != http.StatusBadRequest {
			t.Errorf("%s %v: status %d, want 400", tt.path, tt.q, status)
		}
	}

	reqs := s.AuthorizeRequests()
	if len(reqs) != 8 {
		t.Fatalf("%d requests recorded, want 8", len(reqs))
	}
	want := AuthorizeRequest{Path: authorizePath, AppID: "wxweb", RedirectURI: "https://site.test/cb?next=%2F", ResponseType: "code",
		Scope: "snsapi_base", State: "S1", RawQuery: page("snsapi_base").Encode(), Code: first}
	if reqs[0] != want {
		t.Errorf("recorded %+v, want %+v", reqs[0], want)
	}
	if reqs[2].Path != qrConnectPath || reqs[2].Code != qrCode || reqs[4].Code != "" || reqs[7].Code != "" {
		t.Errorf("recorded %+v", reqs)
	}

	// The exchange answers the scope the page was asked for; an snsapi_base
	// token gets no profile.
	_, a := webExchange(t, s, "wxweb", "sec", first)
	token, _ := a["access_token"].(string)
	if a["scope"] != "snsapi_base" || a["openid"] != OpenID("wxweb", ScriptedWebUser) {
		t.Errorf("exchange of %q: %v", first, a)
	}
	if got := userInfo(t, s, token, OpenID("wxweb", ScriptedWebUser)); got["errcode"] != 48001.0 {
		t.Errorf("snsapi_base userinfo: %v", got)
	}
	if _, a := webExchange(t, s, "wxweb", "sec", qrCode); a["scope"] != "snsapi_login" || a["unionid"] != UnionID("frank") {
		t.Errorf("exchange of %q: %v", qrCode, a)
	}
	if s.WebCodeCalls(ScriptedWebUser) != 1 || s.WebCodeCalls(first) != 1 || s.WebCodeCalls("frank") != 1 {
		t.Errorf("WebCodeCalls: %d %d %d", s.WebCodeCalls(ScriptedWebUser), s.WebCodeCalls(first), s.WebCodeCalls("frank"))
	}
}

func TestWebUser(t *testing.T) {
	for code, want := range map[string]string{
		"alice": "alice", "alice~3": "alice", "a~b~12": "a~b", "alice~": "alice~", "~3": "~3", "alice~x1": "alice~x1",
	} {
		if got := WebUser(code); got != want {
			t.Errorf("WebUser(%q) = %q, want %q", code, got, want)
		}
	}
}

func TestConcurrentWebExchangesOfOneCode(t *testing.T) {
	s := NewServer(t)
	var (
		wg        sync.WaitGroup
		successes int
		used      int
		mu        sync.Mutex
	)
	q := url.Values{"appid": {"wxa"}, "secret": {"sec"}, "code": {"carol"}, "grant_type": {"authorization_code"}}
	for range 20 {
		wg.Go(func() {
			// Not call: t.Fatal must not be called off the test's goroutine.
			resp, err := http.Get(s.URL + webTokenPath + "?" + q.Encode())
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var a struct {
				Errcode int    `json:"errcode"`
				Token   string `json:"access_token"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case a.Errcode == 0 && a.Token != "":
				successes++
			case a.Errcode == 40163:
				used++
			}
		})
	}
	wg.Wait()
	if successes != 1 || used != 19 {
		t.Errorf("%d successes and %d × 40163, want 1 and 19", successes, used)
	}
}
