package fakeplatform

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Douyin, Alipay and Baidu APIs of the engine, in the sandbox and
// stateful.

func serveRaw(t *testing.T, e *Engine, method, target, contentType string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(string(body)))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("answer %q is not JSON: %v", b, err)
	}
	return m
}

func douyinLogin(t *testing.T, e *Engine, appid, secret, code string) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"appid": appid, "secret": secret, "code": code, "anonymous_code": ""})
	status, answer := serveRaw(t, e, http.MethodPost, douyinCode2SessionPath, "application/json", body)
	if status != http.StatusOK {
		return status, nil
	}
	return status, decode(t, answer)
}

func TestDouyinLoginInTheSandbox(t *testing.T) {
	e := Sandbox()
	_, a := douyinLogin(t, e, "tt1", "any", "alice")
	data, _ := a["data"].(map[string]any)
	if a["err_no"] != 0.0 || data["openid"] != OpenID("tt1", "alice") || data["session_key"] != SessionKey("tt1", "alice") || data["unionid"] != UnionID("alice") {
		t.Fatalf("answer %v", a)
	}
	if _, again := douyinLogin(t, e, "tt1", "any", "alice"); again["err_no"] != 0.0 {
		t.Errorf("the sandbox's codes work again and again: %v", again)
	}
	for code, errNo := range map[string]float64{CodeInvalid: 40018, CodeUsed: 40018, CodeBusy: -1, "": 40014} {
		if _, a := douyinLogin(t, e, "tt1", "any", code); a["err_no"] != errNo {
			t.Errorf("%q: %v, want err_no %v", code, a, errNo)
		}
	}
	if status, _ := douyinLogin(t, e, "tt1", "any", CodeLimited); status != http.StatusTooManyRequests {
		t.Errorf("limited: HTTP %d", status)
	}
	// No anonymous_code at all: Douyin's example always sends one.
	_, b := serveRaw(t, e, http.MethodPost, douyinCode2SessionPath, "application/json", []byte(`{"appid":"tt1","secret":"s","code":"x"}`))
	if decode(t, b)["err_no"] != 40014.0 {
		t.Errorf("without anonymous_code: %s", b)
	}
}

func TestDouyinStateful(t *testing.T) {
	e := New(Options{Stateful: true, Scripted: true})
	e.AddApp("tt1", "right")
	if _, a := douyinLogin(t, e, "tt1", "right", "bob"); a["err_no"] != 0.0 {
		t.Fatalf("first: %v", a)
	}
	if _, a := douyinLogin(t, e, "tt1", "right", "bob"); a["err_no"] != 40018.0 {
		t.Errorf("a code works once: %v", a)
	}
	if _, a := douyinLogin(t, e, "tt1", "wrong", "bob2"); a["err_no"] != 40017.0 {
		t.Errorf("wrong secret: %v", a)
	}
	if _, a := douyinLogin(t, e, "tt2", "right", "bob3"); a["err_no"] != 40015.0 {
		t.Errorf("unknown appid: %v", a)
	}
	if _, a := douyinLogin(t, e, "tt1", "right", CodeBusyOnce); a["err_no"] != -1.0 {
		t.Errorf("busyonce, first: %v", a)
	}
	if _, a := douyinLogin(t, e, "tt1", "right", CodeBusyOnce); a["err_no"] != 0.0 {
		t.Errorf("busyonce, second: %v", a)
	}
	if e.CodeCalls("bob") != 2 || e.LoginStats().Rejected != 2 {
		t.Errorf("CodeCalls(bob) = %d, LoginStats %+v", e.CodeCalls("bob"), e.LoginStats())
	}
	seen := strings.Join(e.SecretsSeen(), ",")
	if !strings.Contains(seen, "right") || !strings.Contains(seen, "wrong") {
		t.Errorf("SecretsSeen = %q", seen)
	}
}

// alipayForm is a gateway request signed with key, at t.
func alipayForm(key *rsa.PrivateKey, appid, method string, at time.Time, extra url.Values) []byte {
	form := url.Values{"app_id": {appid}, "method": {method}, "format": {"JSON"}, "charset": {"utf-8"},
		"sign_type": {"RSA2"}, "version": {"1.0"}, "timestamp": {at.In(alipayZone).Format("2006-01-02 15:04:05")}}
	for k, v := range extra {
		form[k] = v
	}
	var names []string
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, k+"="+form.Get(k))
	}
	digest := sha256.Sum256([]byte(strings.Join(pairs, "&")))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	form.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return []byte(form.Encode())
}

// alipayMember checks an answer's sign with Alipay's sandbox key and
// returns its member.
func alipayMember(t *testing.T, body []byte, name string) map[string]any {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	raw := top[name]
	var sign string
	json.Unmarshal(top["sign"], &sign)
	sig, _ := base64.StdEncoding.DecodeString(sign)
	digest := sha256.Sum256(raw)
	if rsa.VerifyPKCS1v15(&SandboxKeys().Alipay.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Fatalf("the answer's sign does not verify: %s", body)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func TestAlipayGateway(t *testing.T) {
	e := New(Options{Stateful: true, Scripted: true})
	app := SandboxKeys().App
	oauth := func(key *rsa.PrivateKey, at time.Time, code string) []byte {
		_, b := serveRaw(t, e, http.MethodPost, alipayGatewayPath, "application/x-www-form-urlencoded",
			alipayForm(key, "2021", alipayOAuthMethod, at, url.Values{"grant_type": {"authorization_code"}, "code": {code}}))
		return b
	}
	m := alipayMember(t, oauth(app, time.Now(), "alice"), "alipay_system_oauth_token_response")
	if m["open_id"] != OpenID("2021", "alice") || m["user_id"] != nil || m["access_token"] == "" {
		t.Errorf("oauth.token: %v", m)
	}
	if m := alipayMember(t, oauth(app, time.Now(), "alice"), "alipay_system_oauth_token_response"); m["sub_code"] != "isv.code-invalid" {
		t.Errorf("a code works once: %v", m)
	}
	if m := alipayMember(t, oauth(app, time.Now(), AlipayCodeUserID), "alipay_system_oauth_token_response"); m["user_id"] != AlipayUserID(AlipayCodeUserID) || m["open_id"] != nil {
		t.Errorf("userid: %v", m)
	}
	if m := alipayMember(t, oauth(wrongKeyForTest(), time.Now(), "bob"), "error_response"); m["sub_code"] != "isv.invalid-signature" {
		t.Errorf("another key's signature: %v", m)
	}
	// Sent in UTC rather than Beijing time: 8 hours off.
	utc := time.Now().UTC()
	naive := time.Date(utc.Year(), utc.Month(), utc.Day(), utc.Hour(), utc.Minute(), utc.Second(), 0, alipayZone)
	if m := alipayMember(t, oauth(app, naive, "carol"), "alipay_system_oauth_token_response"); m["sub_code"] != "isv.invalid-timestamp" {
		t.Errorf("a UTC timestamp: %v", m)
	}
	if m := alipayMember(t, oauth(app, time.Now(), CodeBusy), "alipay_system_oauth_token_response"); m["code"] != "20000" {
		t.Errorf("busy: %v", m)
	}
	_, b := serveRaw(t, e, http.MethodPost, alipayGatewayPath, "application/x-www-form-urlencoded",
		alipayForm(app, "2021", alipayContentMethod, time.Now(), url.Values{"biz_content": {`{"content":"so risky"}`}}))
	if m := alipayMember(t, b, "alipay_security_risk_content_detect_response"); m["action"] != "REJECTED" {
		t.Errorf("content detect: %v", m)
	}
	// Once apps are registered, an unknown app_id gets an unsigned error.
	e.AddApp("2022", "")
	if b := oauth(app, time.Now(), "dave"); strings.Contains(string(b), `"sign"`) || !strings.Contains(string(b), "isv.invalid-app-id") {
		t.Errorf("unknown app: %s", b)
	}
}

var wrongKeyForTest = sync.OnceValue(NewKey)

func TestDouyinPhoneIsEncryptedForTheApp(t *testing.T) {
	e := Sandbox()
	_, tok := serveRaw(t, e, http.MethodPost, douyinClientTokenPath, "application/json",
		[]byte(`{"grant_type":"client_credential","client_key":"tt1","client_secret":"s"}`))
	data, _ := decode(t, tok)["data"].(map[string]any)
	token, _ := data["access_token"].(string)
	if !strings.HasPrefix(token, "clt.") {
		t.Fatalf("client_token %v", data)
	}
	_, b := serveRaw(t, e, http.MethodPost, douyinPhonePath, "application/json", []byte(`{"code":"p1"}`), "access-token", token)
	a := decode(t, b)
	ct, _ := base64.StdEncoding.DecodeString(a["data"].(string))
	plain, err := rsa.DecryptPKCS1v15(nil, SandboxKeys().App, ct)
	if err != nil || !strings.Contains(string(plain), `"purePhoneNumber":"`+PhoneNumber+`"`) {
		t.Errorf("phone data: %q %v", plain, err)
	}
	_, b = serveRaw(t, e, http.MethodPost, douyinPhonePath, "application/json", []byte(`{"code":"p1"}`), "access-token", strings.TrimPrefix(token, "clt."))
	if decode(t, b)["err_no"] != 28001003.0 {
		t.Errorf("an app access_token in place of a client_token: %s", b)
	}
}

func TestBaiduInTheSandbox(t *testing.T) {
	e := Sandbox()
	login := func(code string) (int, map[string]any) {
		status, b := serveRaw(t, e, http.MethodPost, baiduCode2SessionPath, "application/x-www-form-urlencoded",
			[]byte(url.Values{"code": {code}, "client_id": {"key1"}, "sk": {"s"}}.Encode()))
		if status != http.StatusOK {
			return status, nil
		}
		return status, decode(t, b)
	}
	_, a := login("alice")
	key, _ := base64.StdEncoding.DecodeString(a["session_key"].(string))
	if a["openid"] != OpenID("key1", "alice") || len(key) != 24 {
		t.Errorf("login: %v", a)
	}
	if _, a := login(CodeInvalid); a["error"] != "invalid_grant" {
		t.Errorf("invalid: %v", a)
	}
	if status, _ := login(CodeBusy); status != http.StatusServiceUnavailable {
		t.Errorf("busy: %d", status)
	}
	_, tok := serveRaw(t, e, http.MethodPost, baiduTokenPath+"?grant_type=client_credentials&client_id=key1&client_secret=s", "", nil)
	token := decode(t, tok)["access_token"].(string)
	_, b := serveRaw(t, e, http.MethodPost, baiduTextCheckPath+"?access_token="+url.QueryEscape(token), "application/json",
		[]byte(`{"content":"risky words","type":["risk"]}`))
	res := decode(t, b)["data"].(map[string]any)["res"].([]any)
	if res[0].(map[string]any)["errno"] != 1.0 {
		t.Errorf("risky text: %s", b)
	}
	_, b = serveRaw(t, e, http.MethodPost, baiduTextCheckPath, "application/json", []byte(`{"content":"x","type":["risk"]}`))
	if decode(t, b)["error_code"] != 110.0 {
		t.Errorf("no token: %s", b)
	}
}
