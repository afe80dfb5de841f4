package platform

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

func TestDouyinCode2SessionRequest(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 16))
	client, log := capturingClient(canned(`{"err_no":0,"err_tips":"success","log_id":"L1",` +
		`"data":{"session_key":"` + key + `","openid":"_000abc","anonymous_openid":"","unionid":"u-1"}}`))
	sess, err := client.Code2Session(context.Background(), douyinApp("https://dy.test"), "code-1")
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != "_000abc" || sess.UnionID != "u-1" || sess.SessionKey != key || sess.IDType != "" {
		t.Errorf("session %+v", sess)
	}
	reqs := log()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/api/apps/v2/jscode2session" || len(r.query) != 0 {
		t.Errorf("sent %s %s?%s", r.method, r.path, r.query.Encode())
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	wantFields(t, "body", stringFields(t, r.json(t)),
		map[string]string{"appid": "tt1234567890abcdef", "secret": testSecret, "code": "code-1", "anonymous_code": ""})
}

// TestDouyinErrorMapping: each err_no of jscode2session becomes the
// contract's error, and the secret never shows.
func TestDouyinErrorMapping(t *testing.T) {
	tests := []struct {
		answer string
		code   ErrorCode
		errno  int
		calls  int
	}{
		{`{"err_no":40018,"err_tips":"bad code","log_id":"L"}`, InvalidCode, 40018, 1},
		{`{"err_no":40017,"err_tips":"bad secret ` + testSecret + `"}`, Unavailable, 40017, 1},
		{`{"err_no":40015,"err_tips":"bad appid"}`, Unavailable, 40015, 1},
		{`{"err_no":40014,"err_tips":"bad params"}`, Unavailable, 40014, 1},
		{`{"err_no":40019,"err_tips":"bad anonymous_code"}`, Unavailable, 40019, 1},
		{`{"err_no":-1,"err_tips":"system error"}`, Unavailable, -1, 2}, // one retry
		{`{"err_no":12345,"err_tips":"new"}`, Unavailable, 12345, 1},
		// WeChat's numbers mean nothing here: 40029 is not an invalid code.
		{`{"err_no":40029}`, Unavailable, 40029, 1},
		{`{"errcode":0,"openid":"o"}`, Unavailable, 0, 1}, // not Douyin's envelope
		{`<html>`, Unavailable, 0, 1},
	}
	for _, tt := range tests {
		client, log := capturingClient(canned(tt.answer))
		_, err := client.Code2Session(context.Background(), douyinApp("https://dy.test"), "c")
		e := wantError(t, err, "code2session", tt.code, tt.errno)
		if n := len(log()); n != tt.calls {
			t.Errorf("%s: %d calls, want %d", tt.answer, n, tt.calls)
		}
		if tt.code == InvalidCode && !strings.Contains(e.Message, "tt.login") {
			t.Errorf("message %q does not name tt.login", e.Message)
		}
		if tt.errno == 40018 && !strings.Contains(e.Errmsg, "log_id L") {
			t.Errorf("Errmsg %q lacks the log_id", e.Errmsg)
		}
	}
}

// TestDouyinAgainstFake: the sandbox's special codes, single use, bad
// credentials and garbage, through the fake's Douyin API.
func TestDouyinAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := douyinApp(srv.URL)
	c := fastClient()
	sess, err := c.Code2Session(context.Background(), app, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != fakeplatform.OpenID(app.AppID, "alice") || sess.SessionKey != srv.LastSessionKey(app.AppID, sess.OpenID) {
		t.Errorf("session %+v", sess)
	}
	_, err = c.Code2Session(context.Background(), app, "alice")
	wantError(t, err, "code2session", InvalidCode, 40018) // a code works once

	for code, want := range map[string]struct {
		code  ErrorCode
		errno int
		calls int
	}{
		fakeplatform.CodeInvalid:   {InvalidCode, 40018, 1},
		fakeplatform.CodeUsed:      {InvalidCode, 40018, 1},
		fakeplatform.CodeBusy:      {Unavailable, -1, 2},
		fakeplatform.CodeLimited:   {RateLimited, 429, 1},
		fakeplatform.CodeHTTP500:   {Unavailable, 0, 1},
		fakeplatform.CodeGarbage:   {Unavailable, 0, 1},
		fakeplatform.CodeBadOpenID: {Unavailable, 0, 1},
		fakeplatform.CodeBadKey:    {Unavailable, 0, 1},
	} {
		_, err := c.Code2Session(context.Background(), app, code)
		e := wantError(t, err, "code2session", want.code, want.errno)
		if want.code == RateLimited && e.RetryAfter != time.Minute {
			t.Errorf("%s: RetryAfter %v", code, e.RetryAfter)
		}
		if got := srv.CodeCalls(code); got != want.calls {
			t.Errorf("%s: %d calls, want %d", code, got, want.calls)
		}
	}
	if _, err := c.Code2Session(context.Background(), app, fakeplatform.CodeBusyOnce); err != nil {
		t.Errorf("busyonce: %v", err)
	}
	// Douyin has no high-risk refusal: "blocked" is a user like any other.
	if _, err := c.Code2Session(context.Background(), app, fakeplatform.CodeBlocked); err != nil {
		t.Errorf("blocked: %v", err)
	}

	srv.AddApp(app.AppID, "another-secret")
	_, err = c.Code2Session(context.Background(), app, "bob")
	wantError(t, err, "code2session", Unavailable, 40017)
	other := app
	other.AppID = "tt0000000000000000"
	_, err = c.Code2Session(context.Background(), other, "bob")
	wantError(t, err, "code2session", Unavailable, 40015)
}

func TestDouyinPhoneNumber(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := douyinApp(srv.URL)
	s := &Service{Client: fastClient()}
	p, err := s.PhoneNumber(context.Background(), app, "phone-1")
	if err != nil {
		t.Fatal(err)
	}
	if p.PurePhoneNumber != fakeplatform.PhoneNumber || p.CountryCode != fakeplatform.PhoneCountryCode {
		t.Errorf("phone %#v", p)
	}
	_, err = s.PhoneNumber(context.Background(), app, "phone-1")
	wantError(t, err, phoneAPI, InvalidCode, 28005187) // a phone code works once
	_, err = s.PhoneNumber(context.Background(), app, fakeplatform.CodeInvalid)
	wantError(t, err, phoneAPI, InvalidCode, 28005187)

	// Never sent twice: busy is not retried.
	_, err = s.PhoneNumber(context.Background(), app, fakeplatform.CodeBusy)
	wantError(t, err, phoneAPI, Unavailable, -1)
	if n := srv.PhoneCalls(fakeplatform.CodeBusy); n != 1 {
		t.Errorf("busy phone code sent %d times", n)
	}

	// A refused client_token is fetched again and the code sent again.
	srv.ExpireTokens()
	if _, err := s.PhoneNumber(context.Background(), app, "phone-2"); err != nil {
		t.Errorf("after the token expired: %v", err)
	}
	if n := srv.PhoneCalls("phone-2"); n != 2 {
		t.Errorf("phone-2 sent %d times, want 2 (refused token, then fresh)", n)
	}

	// A wrong private_key is caught: no number, no key in the error.
	wrong := app
	wrong.PrivateKey = wrongKey()
	_, err = s.PhoneNumber(context.Background(), wrong, "phone-3")
	e := wantError(t, err, phoneAPI, Unavailable, 0)
	if !strings.Contains(e.Message, "private_key") {
		t.Errorf("message %q does not name private_key", e.Message)
	}
	noKeyText(t, err, wrongKey(), app.PrivateKey)

	none := app
	none.PrivateKey = nil
	_, err = s.PhoneNumber(context.Background(), none, "phone-4")
	wantError(t, err, phoneAPI, Unsupported, 0)
	if srv.PhoneCalls("phone-4") != 0 {
		t.Error("a phone code was sent without a key to read the answer")
	}
}

func TestDouyinPhoneRequest(t *testing.T) {
	client, log := capturingClient(func(s sent) (int, string) {
		if s.path == "/oauth/client_token/" {
			return 0, `{"data":{"access_token":"clt.tok","description":"","error_code":0,"expires_in":7200},"message":"success"}`
		}
		return 0, `{"err_no":28005187,"err_msg":"expired","log_id":"L"}`
	})
	app := douyinApp("https://dy.test")
	_, err := (&Service{Client: client}).PhoneNumber(context.Background(), app, "pc")
	wantError(t, err, phoneAPI, InvalidCode, 28005187, "clt.tok")
	reqs := log()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	wantFields(t, "client_token body", stringFields(t, reqs[0].json(t)),
		map[string]string{"grant_type": "client_credential", "client_key": app.AppID, "client_secret": testSecret})
	phone := reqs[1]
	if phone.header.Get("access-token") != "clt.tok" || len(phone.query) != 0 {
		t.Errorf("the client_token went as header %q, query %v", phone.header.Get("access-token"), phone.query)
	}
	wantFields(t, "phone body", stringFields(t, phone.json(t)), map[string]string{"code": "pc"})
}

func TestDouyinContentChecks(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := douyinApp(srv.URL)
	s := &Service{Client: fastClient()}
	for text, want := range map[string]string{"nice": SuggestPass, "so risky": SuggestRisky} {
		v, err := s.CheckText(context.Background(), app, "o1", text)
		if err != nil || v.Suggest != want {
			t.Errorf("CheckText(%q) = %+v, %v; want %s", text, v, err, want)
		}
	}
	for image, want := range map[string]string{"\x89PNG ok": SuggestPass, "\x89PNG RISKY": SuggestRisky} {
		v, err := s.CheckImage(context.Background(), app, []byte(image))
		if err != nil || v.Suggest != want {
			t.Errorf("CheckImage(%q) = %+v, %v; want %s", image, v, err, want)
		}
	}
	if got := srv.ImageChecks(); len(got) != 2 {
		t.Errorf("%d image checks recorded", len(got))
	}
	// One token for all four, from /api/apps/v2/token.
	if n := srv.Calls("/api/apps/v2/token"); n != 1 {
		t.Errorf("%d token fetches", n)
	}
	// Refused tokens (text: code 401; image: error 2) are fetched again.
	srv.RevokeTokens()
	if _, err := s.CheckText(context.Background(), app, "o1", "again"); err != nil {
		t.Errorf("text after revocation: %v", err)
	}
	srv.RevokeTokens()
	if _, err := s.CheckImage(context.Background(), app, []byte("img")); err != nil {
		t.Errorf("image after revocation: %v", err)
	}
	if n := srv.Calls("/api/apps/v2/token"); n != 3 {
		t.Errorf("%d token fetches, want 3", n)
	}
}

func TestDouyinContentCheckRequests(t *testing.T) {
	client, log := capturingClient(func(s sent) (int, string) {
		switch s.path {
		case "/api/apps/v2/token":
			return 0, `{"err_no":0,"err_tips":"success","data":{"access_token":"tok-1","expires_in":7200}}`
		case "/api/v2/tags/text/antidirt":
			return 0, `{"log_id":"L","data":[{"code":0,"msg":"","predicts":[{"hit":false,"prob":0}]}]}`
		}
		return 0, `{"error":0,"message":"ok","predicts":[{"model_name":"porn","hit":true}]}`
	})
	s := &Service{Client: client}
	app := douyinApp("https://dy.test")
	if v, err := s.CheckText(context.Background(), app, "o", "hello"); err != nil || v.Risky() {
		t.Fatalf("text: %+v %v", v, err)
	}
	if v, err := s.CheckImage(context.Background(), app, []byte("IMG")); err != nil || !v.Risky() {
		t.Fatalf("image: %+v %v", v, err)
	}
	reqs := log()
	wantFields(t, "token body", stringFields(t, reqs[0].json(t)),
		map[string]string{"appid": app.AppID, "secret": testSecret, "grant_type": "client_credential"})
	text := reqs[1]
	if text.header.Get("X-Token") != "tok-1" || len(text.query) != 0 {
		t.Errorf("text check token: header %q, query %v", text.header.Get("X-Token"), text.query)
	}
	if got := string(text.body); got != `{"tasks":[{"content":"hello"}]}` {
		t.Errorf("text check body %s", got)
	}
	image := reqs[2]
	wantFields(t, "image body", stringFields(t, image.json(t)),
		map[string]string{"app_id": app.AppID, "access_token": "tok-1", "image_data": base64.StdEncoding.EncodeToString([]byte("IMG"))})
}
