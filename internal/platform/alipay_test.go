package platform

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// alipaySigned is a gateway answer whose member text is signed with key,
// exactly as the text is given (spaces included).
func alipaySigned(t *testing.T, key *rsa.PrivateKey, member, text string) string {
	t.Helper()
	digest := sha256.Sum256([]byte(text))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return `{"` + member + `":` + text + `,"sign":"` + base64.StdEncoding.EncodeToString(sig) + `"}`
}

const tokenMember = "alipay_system_oauth_token_response"

func TestAlipaySignContent(t *testing.T) {
	// The documented example: sorted, raw values (the timestamp keeps its
	// space, JSON stays as is), sign left out, empty values left out.
	params := url.Values{
		"app_id":      {"2014072300007148"},
		"method":      {"alipay.mobile.public.menu.add"},
		"charset":     {"GBK"},
		"sign_type":   {"RSA2"},
		"timestamp":   {"2014-07-24 03:07:50"},
		"biz_content": {`{"button":[{"actionParam":"ZFB_HFCZ"}]}`},
		"sign":        {"xxx"},
		"version":     {"1.0"},
		"app_auth":    {" "},
	}
	want := `app_id=2014072300007148&biz_content={"button":[{"actionParam":"ZFB_HFCZ"}]}&charset=GBK` +
		`&method=alipay.mobile.public.menu.add&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0`
	if got := AlipaySignContent(params); got != want {
		t.Errorf("sign content\n got %s\nwant %s", got, want)
	}
}

// TestAlipayOAuthTokenRequest: the request's method, path, charset,
// timestamp and signature, and the answer's parsing.
func TestAlipayOAuthTokenRequest(t *testing.T) {
	keys := fakeplatform.SandboxKeys()
	client, log := capturingClient(canned(alipaySigned(t, keys.Alipay, tokenMember,
		`{"access_token":"authusrB1","expires_in":1296000,"refresh_token":"authusrB2","re_expires_in":2592000,`+
			`"auth_start":"2026-01-02 03:04:05","open_id":"074a1CcTG1Le"}`)))
	app := alipayApp("https://ali.test")
	before := time.Now()
	sess, err := client.Code2Session(context.Background(), app, "auth-code-1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != "074a1CcTG1Le" || sess.IDType != IDTypeOpenID || sess.SessionKey != "" || sess.UnionID != "" {
		t.Errorf("session %+v", sess)
	}
	reqs := log()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/gateway.do" || len(r.query) != 0 {
		t.Errorf("sent %s %s?%s", r.method, r.path, r.query.Encode())
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded;charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	form := r.form(t)
	fields := formFields(form)
	sign, stamp := fields["sign"], fields["timestamp"]
	delete(fields, "sign")
	delete(fields, "timestamp")
	wantFields(t, "form", fields, map[string]string{"app_id": app.AppID, "method": "alipay.system.oauth.token", "format": "JSON",
		"charset": "utf-8", "sign_type": "RSA2", "version": "1.0", "grant_type": "authorization_code", "code": "auth-code-1"})

	// Beijing time, "yyyy-MM-dd HH:mm:ss", now.
	at, err := time.ParseInLocation("2006-01-02 15:04:05", stamp, time.FixedZone("CST", 8*3600))
	if err != nil || at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("timestamp %q is not now in GMT+8 (%v)", stamp, err)
	}

	// The sign is SHA256withRSA by the app's key over the sorted raw
	// parameters, sign_type included, computed here independently.
	content := "app_id=" + app.AppID + "&charset=utf-8&code=auth-code-1&format=JSON&grant_type=authorization_code" +
		"&method=alipay.system.oauth.token&sign_type=RSA2&timestamp=" + stamp + "&version=1.0"
	sig, err := base64.StdEncoding.DecodeString(sign)
	digest := sha256.Sum256([]byte(content))
	if err != nil || rsa.VerifyPKCS1v15(&keys.App.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		t.Errorf("sign %q does not verify over %q with the app's public key", sign, content)
	}
}

// TestAlipayAnswerSignature: nothing in an answer is believed unless its
// sign verifies with alipay_public_key over the member's text as sent.
func TestAlipayAnswerSignature(t *testing.T) {
	keys := fakeplatform.SandboxKeys()
	good := `{"open_id":"074a1CcTG1Le","access_token":"authusrB1"}`
	spaced := "{ \"open_id\" : \"074a1CcTG1Le\",\n \"user_id\":\"2088102150477652\" }"
	tests := []struct {
		name   string
		answer string
		ok     bool
		words  string // in the message of a failure
	}{
		{"signed by Alipay", alipaySigned(t, keys.Alipay, tokenMember, good), true, ""},
		{"signed text with its spaces", alipaySigned(t, keys.Alipay, tokenMember, spaced), true, ""},
		{"signed by another key", alipaySigned(t, wrongKey(), tokenMember, good), false, "alipay_public_key"},
		{"member changed after signing", strings.Replace(alipaySigned(t, keys.Alipay, tokenMember, good), "074a1", "074a2", 1), false, "alipay_public_key"},
		{"not signed", `{"` + tokenMember + `":` + good + `}`, false, "not signed"},
		{"sign not base64", `{"` + tokenMember + `":` + good + `,"sign":"%%%"}`, false, "alipay_public_key"},
		{"another method's member", alipaySigned(t, keys.Alipay, "alipay_user_info_share_response", good), false, "no answer member"},
		{"an error signed by another key", alipaySigned(t, wrongKey(), "error_response",
			`{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"x"}`), false, "alipay_public_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, _ := capturingClient(canned(tt.answer))
			sess, err := client.Code2Session(context.Background(), alipayApp("https://ali.test"), "c")
			if tt.ok {
				if err != nil || sess.OpenID != "074a1CcTG1Le" || sess.IDType != IDTypeOpenID {
					t.Errorf("got %+v, %v", sess, err)
				}
				return
			}
			if sess != nil {
				t.Fatalf("logged in %+v from an answer that must not be believed", sess)
			}
			e := wantError(t, err, alipayOAuthAPI, Unavailable, 0)
			if !strings.Contains(e.Message, tt.words) {
				t.Errorf("message %q lacks %q", e.Message, tt.words)
			}
		})
	}
}

// TestAlipayIDTypes: open_id when the app is in openid mode (or both come,
// during the switch), user_id for older apps; the session says which.
func TestAlipayIDTypes(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := alipayApp(srv.URL)
	for code, want := range map[string]struct{ id, idType string }{
		"alice":                        {fakeplatform.OpenID(app.AppID, "alice"), IDTypeOpenID},
		fakeplatform.AlipayCodeBothIDs: {fakeplatform.OpenID(app.AppID, fakeplatform.AlipayCodeBothIDs), IDTypeOpenID},
		fakeplatform.AlipayCodeUserID:  {fakeplatform.AlipayUserID(fakeplatform.AlipayCodeUserID), IDTypeUserID},
	} {
		sess, err := fastClient().Code2Session(context.Background(), app, code)
		if err != nil || sess.OpenID != want.id || sess.IDType != want.idType {
			t.Errorf("%s: got %+v, %v; want %s %s", code, sess, err, want.idType, want.id)
		}
	}
	if id := fakeplatform.AlipayUserID("x"); len(id) != 16 || !strings.HasPrefix(id, "2088") {
		t.Errorf("AlipayUserID = %q, want 16 digits starting 2088", id)
	}
}

// TestAlipayAgainstFake: the failures, through the fake's gateway, which
// checks every request's signature and signs every answer.
func TestAlipayAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := alipayApp(srv.URL)
	c := fastClient()
	if _, err := c.Code2Session(context.Background(), app, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Code2Session(context.Background(), app, "alice")
	wantError(t, err, alipayOAuthAPI, InvalidCode, 40002) // an auth code works once

	for code, want := range map[string]struct {
		code  ErrorCode
		errno int
		calls int
	}{
		fakeplatform.CodeInvalid:   {InvalidCode, 40002, 1},
		fakeplatform.CodeUsed:      {InvalidCode, 40002, 1},
		fakeplatform.CodeBusy:      {Unavailable, 20000, 2},
		fakeplatform.CodeLimited:   {RateLimited, 429, 1},
		fakeplatform.CodeGarbage:   {Unavailable, 0, 1},
		fakeplatform.CodeHTTP500:   {Unavailable, 0, 1},
		fakeplatform.CodeBadOpenID: {Unavailable, 0, 1},
	} {
		_, err := c.Code2Session(context.Background(), app, code)
		e := wantError(t, err, alipayOAuthAPI, want.code, want.errno)
		if got := srv.CodeCalls(code); got != want.calls {
			t.Errorf("%s: %d calls, want %d (%v)", code, got, want.calls, e)
		}
	}
	if _, err := c.Code2Session(context.Background(), app, fakeplatform.CodeBusyOnce); err != nil {
		t.Errorf("busyonce: %v", err)
	}

	// A wrong app private key: Alipay refuses the request's signature.
	wrongApp := app
	wrongApp.PrivateKey = wrongKey()
	_, err = c.Code2Session(context.Background(), wrongApp, "bob")
	e := wantError(t, err, alipayOAuthAPI, Unavailable, 40002)
	if !strings.Contains(e.Message, "private_key") || !strings.Contains(e.Errmsg, "isv.invalid-signature") {
		t.Errorf("wrong private key: %v", e)
	}
	noKeyText(t, err, wrongKey(), app.PrivateKey)

	// A wrong Alipay public key: the answer's signature does not verify,
	// and no one logs in.
	wrongPub := app
	wrongPub.PlatformPublicKey = &wrongKey().PublicKey
	sess, err := c.Code2Session(context.Background(), wrongPub, "carol")
	e = wantError(t, err, alipayOAuthAPI, Unavailable, 0)
	if sess != nil || !strings.Contains(e.Message, "alipay_public_key") {
		t.Errorf("wrong alipay public key: %+v %v", sess, e)
	}

	// An app_id the gateway does not know: an unsigned error.
	srv.AddApp("2021999999999999", "")
	_, err = c.Code2Session(context.Background(), app, "dave")
	e = wantError(t, err, alipayOAuthAPI, Unavailable, 40002)
	if !strings.Contains(e.Errmsg, "isv.invalid-app-id") {
		t.Errorf("unknown app: %v", e)
	}
}

func TestAlipayGatewayErrorMapping(t *testing.T) {
	keys := fakeplatform.SandboxKeys()
	tests := []struct {
		sub, code string
		want      ErrorCode
		calls     int
	}{
		{"isv.code-invalid", "40002", InvalidCode, 1},
		{"isv.invalid-signature", "40002", Unavailable, 1},
		{"isv.invalid-app-id", "40002", Unavailable, 1},
		{"isv.invalid-timestamp", "40002", Unavailable, 1},
		{"isp.unknow-error", "20000", Unavailable, 2},
		{"isv.something-new", "40004", Unavailable, 1},
	}
	for _, tt := range tests {
		client, log := capturingClient(canned(alipaySigned(t, keys.Alipay, "error_response",
			`{"code":"`+tt.code+`","msg":"m","sub_code":"`+tt.sub+`","sub_msg":"s"}`)))
		_, err := client.Code2Session(context.Background(), alipayApp("https://ali.test"), "c")
		e := wantError(t, err, alipayOAuthAPI, tt.want, atoi(tt.code))
		if n := len(log()); n != tt.calls {
			t.Errorf("%s: %d calls, want %d", tt.sub, n, tt.calls)
		}
		if !strings.Contains(e.Errmsg, tt.sub) {
			t.Errorf("%s: Errmsg %q", tt.sub, e.Errmsg)
		}
	}
	// An error inside the method's member (code not 10000) is an error too.
	client, _ := capturingClient(canned(alipaySigned(t, keys.Alipay, tokenMember,
		`{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.code-invalid","sub_msg":"x"}`)))
	_, err := client.Code2Session(context.Background(), alipayApp("https://ali.test"), "c")
	wantError(t, err, alipayOAuthAPI, InvalidCode, 40002)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestAlipayCheckText(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := alipayApp(srv.URL)
	s := &Service{Client: fastClient()}
	for text, want := range map[string]string{"nice": SuggestPass, "a risky one": SuggestRisky} {
		v, err := s.CheckText(context.Background(), app, "o", text)
		if err != nil || v.Suggest != want {
			t.Errorf("%q: %+v %v, want %s", text, v, err, want)
		}
	}
	checks := srv.TextChecks()
	if len(checks) != 2 || checks[0].AppID != app.AppID {
		t.Errorf("text checks %+v", checks)
	}
	// No token is fetched: the gateway's calls are signed instead.
	if srv.Calls("/cgi-bin/stable_token") != 0 {
		t.Error("a token was fetched for Alipay")
	}
	_, err := s.CheckImage(context.Background(), app, []byte("img"))
	wantError(t, err, "image_check", Unsupported, 0)

	client, log := capturingClient(canned(alipaySigned(t, fakeplatform.SandboxKeys().Alipay,
		"alipay_security_risk_content_detect_response", `{"code":"10000","msg":"Success","action":"UNSURE"}`)))
	v, err := (&Service{Client: client}).CheckText(context.Background(), alipayApp("https://ali.test"), "o", "hm")
	if err != nil || v.Suggest != SuggestReview {
		t.Errorf("an action other than REJECTED/PASSED: %+v %v", v, err)
	}
	f := log()[0].form(t)
	if f.Get("method") != "alipay.security.risk.content.detect" || f.Get("biz_content") != `{"content":"hm"}` {
		t.Errorf("content detect form %v", f)
	}
}
