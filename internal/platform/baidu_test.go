package platform

import (
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

func TestBaiduCode2SessionRequest(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 24))
	client, log := capturingClient(canned(`{"openid":"k4v2Nq","session_key":"` + key + `"}`))
	app := baiduApp("https://bd.test")
	sess, err := client.Code2Session(context.Background(), app, "swan-code")
	if err != nil {
		t.Fatal(err)
	}
	if sess.OpenID != "k4v2Nq" || sess.SessionKey != key || sess.UnionID != "" {
		t.Errorf("session %+v", sess)
	}
	r := log()[0]
	if r.method != http.MethodPost || r.path != "/oauth/jscode2sessionkey" || len(r.query) != 0 {
		t.Errorf("sent %s %s?%s", r.method, r.path, r.query.Encode())
	}
	if ct := r.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q", ct)
	}
	wantFields(t, "form", formFields(r.form(t)), map[string]string{"code": "swan-code", "client_id": app.AppID, "sk": testSecret})
}

func TestBaiduErrorMapping(t *testing.T) {
	tests := []struct {
		status int
		answer string
		code   ErrorCode
		errno  int
	}{
		{0, `{"errno":40001,"error":"invalid_grant","error_description":"invalid code"}`, InvalidCode, 40001},
		{0, `{"error":"invalid_grant","error_description":"code used"}`, InvalidCode, 0},
		{0, `{"error":"invalid_client","error_description":"unknown client id ` + testSecret + `"}`, Unavailable, 0},
		{0, `{"error":"unauthorized_client"}`, Unavailable, 0},
		{0, `{"errno":2,"error":"new_error"}`, Unavailable, 2},
		{0, `{"errno":5}`, Unavailable, 5},
		{0, `{"openid":"k4v2Nq","session_key":"short"}`, Unavailable, 0},
		{0, `{"openid":"../x","session_key":"` + base64.StdEncoding.EncodeToString(make([]byte, 24)) + `"}`, Unavailable, 0},
		{http.StatusServiceUnavailable, `busy`, Unavailable, 0},
		{http.StatusTooManyRequests, `{}`, RateLimited, 429},
	}
	for _, tt := range tests {
		client, _ := capturingClient(func(sent) (int, string) { return tt.status, tt.answer })
		_, err := client.Code2Session(context.Background(), baiduApp("https://bd.test"), "c")
		e := wantError(t, err, "code2session", tt.code, tt.errno)
		if tt.code == InvalidCode && !strings.Contains(e.Message, "swan.getLoginCode") {
			t.Errorf("message %q does not name swan.getLoginCode", e.Message)
		}
	}
}

func TestBaiduAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := baiduApp(srv.URL)
	c := fastClient()
	sess, err := c.Code2Session(context.Background(), app, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if key, _ := base64.StdEncoding.DecodeString(sess.SessionKey); len(key) != 24 || sess.SessionKey != srv.LastSessionKey(app.AppID, sess.OpenID) {
		t.Errorf("session_key %q: want the fake's, 24 bytes", sess.SessionKey)
	}
	_, err = c.Code2Session(context.Background(), app, "alice")
	wantError(t, err, "code2session", InvalidCode, 0) // a code works once
	for code, want := range map[string]struct {
		code  ErrorCode
		errno int
	}{
		fakeplatform.CodeInvalid: {InvalidCode, 0}, fakeplatform.CodeUsed: {InvalidCode, 0},
		fakeplatform.CodeBusy: {Unavailable, 0}, fakeplatform.CodeLimited: {RateLimited, 429}, fakeplatform.CodeBadOpenID: {Unavailable, 0},
	} {
		_, err := c.Code2Session(context.Background(), app, code)
		wantError(t, err, "code2session", want.code, want.errno)
	}
	srv.AddApp(app.AppID, "another-secret")
	_, err = c.Code2Session(context.Background(), app, "bob")
	e := wantError(t, err, "code2session", Unavailable, 0)
	if !strings.Contains(e.Message, "App Key") {
		t.Errorf("wrong secret: %v", e)
	}
}

func TestBaiduCheckText(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := baiduApp(srv.URL)
	s := &Service{Client: fastClient()}
	for text, want := range map[string]string{"nice": SuggestPass, "very risky": SuggestRisky} {
		v, err := s.CheckText(context.Background(), app, "o", text)
		if err != nil || v.Suggest != want {
			t.Errorf("%q: %+v %v, want %s", text, v, err, want)
		}
	}
	srv.ExpireTokens() // error_code 111: fetched again
	if _, err := s.CheckText(context.Background(), app, "o", "again"); err != nil {
		t.Errorf("after the token expired: %v", err)
	}
	if n := srv.Calls("/oauth/2.0/token"); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
	_, err := s.CheckImage(context.Background(), app, []byte("img"))
	wantError(t, err, "image_check", Unsupported, 0)
	_, err = s.PhoneNumber(context.Background(), app, "p")
	wantError(t, err, phoneAPI, Unsupported, 0)
}

func TestBaiduCheckTextRequests(t *testing.T) {
	client, log := capturingClient(func(s sent) (int, string) {
		if s.path == "/oauth/2.0/token" {
			return 0, `{"access_token":"1.abc-123","expires_in":86400,"scope":"smartapp_snsapi_base"}`
		}
		return 0, `{"errno":0,"msg":"success","data":{"res":[{"type":"risk","errno":0,"msg":""}],"retrieveId":"r"}}`
	})
	app := baiduApp("https://bd.test")
	if _, err := (&Service{Client: client}).CheckText(context.Background(), app, "o", "hello"); err != nil {
		t.Fatal(err)
	}
	reqs := log()
	token := reqs[0]
	if token.method != http.MethodPost || len(token.body) != 0 {
		t.Errorf("token request %s with body %q", token.method, token.body)
	}
	wantFields(t, "token query", formFields(token.query), map[string]string{"grant_type": "client_credentials",
		"client_id": app.AppID, "client_secret": testSecret, "scope": "smartapp_snsapi_base"})
	check := reqs[1]
	if check.query.Get("access_token") != "1.abc-123" {
		t.Errorf("check query %v", check.query)
	}
	if got := string(check.body); got != `{"content":"hello","type":["risk"]}` {
		t.Errorf("check body %s", got)
	}
}
