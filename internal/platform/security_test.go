package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const imageCheckPath = "/wxa/img_sec_check"

// pngImage starts like a PNG, so it sniffs as image/png.
var pngImage = append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 1, 2, 0xff}, 64)...)

func TestCheckTextVerdicts(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	tests := []struct {
		content string
		want    Verdict
	}{
		{"Band", Verdict{SuggestPass, fakeplatform.PassLabel}},
		{"please " + fakeplatform.TextReview + " me", Verdict{SuggestReview, fakeplatform.ReviewLabel}},
		{"a RISKY nickname", Verdict{SuggestRisky, fakeplatform.RiskyLabel}},
		{"微信用户", Verdict{SuggestPass, fakeplatform.PassLabel}},
	}
	for _, tt := range tests {
		v, err := s.CheckText(context.Background(), app, testOpenID, tt.content)
		if err != nil || v != tt.want {
			t.Errorf("%q: got %+v %v, want %+v", tt.content, v, err, tt.want)
		}
		if v.Risky() != (tt.want.Suggest == SuggestRisky) {
			t.Errorf("%q: Risky() = %v", tt.content, v.Risky())
		}
	}
	checks := srv.TextChecks()
	if len(checks) != len(tests) {
		t.Fatalf("%d checks recorded, want %d", len(checks), len(tests))
	}
	for i, c := range checks {
		want := fakeplatform.TextCheck{AppID: testAppID, OpenID: testOpenID, Scene: 1, Version: 2, Content: tests[i].content}
		if c != want {
			t.Errorf("check %d = %+v, want %+v", i, c, want)
		}
	}
	if got := srv.Calls(stableTokenPath); got != 1 {
		t.Errorf("%d token fetches, want 1", got)
	}
}

func TestCheckTextQQ(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := App{AppID: "1110000000", Secret: testSecret, Kind: QQ, APIBase: srv.URL}
	for content, want := range map[string]Verdict{
		"fine":        {Suggest: SuggestPass},
		"quite risky": {Suggest: SuggestRisky},
	} {
		v, err := s.CheckText(context.Background(), app, testOpenID, content)
		if err != nil || v != want {
			t.Errorf("%q: got %+v %v, want %+v", content, v, err, want)
		}
	}
	for _, c := range srv.TextChecks() {
		if c.AppID != app.AppID || c.Version != 0 || c.OpenID != "" {
			t.Errorf("QQ check %+v: want appid %s in the body and no version or openid", c, app.AppID)
		}
	}
	if srv.Calls("/api/json/security/MsgSecCheck") != 2 || srv.Calls("/api/getToken") != 1 || srv.Calls(textCheckPath) != 0 {
		t.Error("QQ did not use its own APIs")
	}
}

// TestAccessTokenAPIRequests checks method, path, query and body of every
// access_token API, for WeChat and QQ.
func TestAccessTokenAPIRequests(t *testing.T) {
	tests := []struct {
		name     string
		kind     Kind
		call     func(*Service, App) error
		path     string
		wantBody func(t *testing.T, ex exchange)
	}{
		{"wechat text", WeChat, func(s *Service, app App) error {
			_, err := s.CheckText(context.Background(), app, testOpenID, "Band")
			return err
		}, "/wxa/msg_sec_check", func(t *testing.T, ex exchange) {
			wantJSON(t, ex, map[string]any{"version": 2.0, "openid": testOpenID, "scene": 1.0, "content": "Band"})
		}},
		{"qq text", QQ, func(s *Service, app App) error {
			_, err := s.CheckText(context.Background(), app, testOpenID, "Band")
			return err
		}, "/api/json/security/MsgSecCheck", func(t *testing.T, ex exchange) {
			wantJSON(t, ex, map[string]any{"appid": testAppID, "content": "Band"})
		}},
		{"wechat image", WeChat, func(s *Service, app App) error {
			_, err := s.CheckImage(context.Background(), app, pngImage)
			return err
		}, "/wxa/img_sec_check", func(t *testing.T, ex exchange) {
			wantMultipart(t, ex, map[string]string{})
		}},
		{"qq image", QQ, func(s *Service, app App) error {
			_, err := s.CheckImage(context.Background(), app, pngImage)
			return err
		}, "/api/json/security/ImgSecCheck", func(t *testing.T, ex exchange) {
			wantMultipart(t, ex, map[string]string{"appid": testAppID})
		}},
		{"wechat phone", WeChat, func(s *Service, app App) error {
			_, err := s.PhoneNumber(context.Background(), app, "phonecode")
			return err
		}, "/wxa/business/getuserphonenumber", func(t *testing.T, ex exchange) {
			wantJSON(t, ex, map[string]any{"code": "phonecode"})
		}},
	}
	answer := `{"errcode":0,"errmsg":"ok","result":{"suggest":"pass","label":100},` +
		`"phone_info":{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86"}}`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, log := recordingClient(cannedToken(answer))
			s := &Service{Client: client}
			if err := tt.call(s, App{AppID: testAppID, Secret: testSecret, Kind: tt.kind}); err != nil {
				t.Fatal(err)
			}
			reqs := log()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want a token fetch and the call", len(reqs))
			}
			ex := reqs[1]
			if ex.method != http.MethodPost || ex.path != tt.path {
				t.Errorf("sent %s %s, want POST %s", ex.method, ex.path, tt.path)
			}
			if len(ex.query) != 1 || ex.query.Get("access_token") != "tok-1" {
				t.Errorf("query %v, want only access_token=tok-1", ex.query)
			}
			tt.wantBody(t, ex)
		})
	}
}

func wantJSON(t *testing.T, ex exchange, want map[string]any) {
	t.Helper()
	if ex.contentType != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ex.contentType)
	}
	var got map[string]any
	if err := json.Unmarshal(ex.body, &got); err != nil {
		t.Fatalf("body %q: %v", ex.body, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("body %v, want %v", got, want)
	}
}

// wantMultipart checks a multipart body: the fields, and pngImage as the
// file "media" with its sniffed type.
func wantMultipart(t *testing.T, ex exchange, fields map[string]string) {
	t.Helper()
	mediaType, params, err := mime.ParseMediaType(ex.contentType)
	if err != nil || mediaType != "multipart/form-data" {
		t.Fatalf("Content-Type %q, want multipart/form-data", ex.contentType)
	}
	form, err := multipart.NewReader(bytes.NewReader(ex.body), params["boundary"]).ReadForm(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range fields {
		if got := form.Value[k]; !slices.Equal(got, []string{v}) {
			t.Errorf("field %s = %q, want %q", k, got, v)
		}
	}
	if len(form.Value) != len(fields) {
		t.Errorf("fields %v, want %v", form.Value, fields)
	}
	files := form.File["media"]
	if len(files) != 1 || len(form.File) != 1 {
		t.Fatalf("files %v, want one file media", form.File)
	}
	if files[0].Filename != "avatar.png" || files[0].Header.Get("Content-Type") != "image/png" {
		t.Errorf("file %q of type %q, want avatar.png of image/png", files[0].Filename, files[0].Header.Get("Content-Type"))
	}
	f, _ := files[0].Open()
	defer f.Close()
	if got, _ := io.ReadAll(f); !bytes.Equal(got, pngImage) {
		t.Error("the media bytes differ from the image")
	}
}

func TestCheckTextAnswers(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		want      Verdict
		wantErr   ErrorCode
		wantErrno int
	}{
		{"pass", `{"errcode":0,"errmsg":"ok","result":{"suggest":"pass","label":100}}`, Verdict{SuggestPass, 100}, "", 0},
		{"review", `{"errcode":0,"result":{"suggest":"review","label":20002}}`, Verdict{SuggestReview, 20002}, "", 0},
		{"risky", `{"errcode":0,"result":{"suggest":"risky","label":20001}}`, Verdict{SuggestRisky, 20001}, "", 0},
		{"87014", `{"errcode":87014,"errmsg":"risky content"}`, Verdict{SuggestRisky, 0}, "", 0},
		{"no result", `{"errcode":0,"errmsg":"ok"}`, Verdict{}, Unavailable, 0},
		{"unknown suggestion", `{"errcode":0,"result":{"suggest":"maybe","label":1}}`, Verdict{}, Unavailable, 0},
		{"label as a string", `{"errcode":0,"result":{"suggest":"pass","label":"100"}}`, Verdict{}, Unavailable, 0},
		{"openid unknown", `{"errcode":40003,"errmsg":"invalid openid"}`, Verdict{}, Unavailable, 40003},
		{"user not seen lately", `{"errcode":61010,"errmsg":"user access expired"}`, Verdict{}, Unavailable, 61010},
		{"rate limited", `{"errcode":45011,"errmsg":"limit"}`, Verdict{}, RateLimited, 45011},
		{"unknown errcode", `{"errcode":12345,"errmsg":"new"}`, Verdict{}, Unavailable, 12345},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, _ := recordingClient(cannedToken(tt.body))
			v, err := (&Service{Client: client}).CheckText(context.Background(), App{AppID: testAppID, Secret: testSecret}, testOpenID, "Band")
			if tt.wantErr == "" {
				if err != nil || v != tt.want {
					t.Errorf("got %+v %v, want %+v", v, err, tt.want)
				}
				return
			}
			wantError(t, err, "msg_sec_check", tt.wantErr, tt.wantErrno, "tok-1")
		})
	}
}

func TestCheckTextEmptyPassesWithoutCall(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	v, err := newService(nil).CheckText(context.Background(), testApp(srv.URL), testOpenID, "")
	if err != nil || v.Suggest != SuggestPass || v.Risky() {
		t.Errorf("got %+v %v", v, err)
	}
	if srv.Calls(stableTokenPath)+srv.Calls(textCheckPath) != 0 {
		t.Error("the platform was called for empty text")
	}
}

func TestCheckImage(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	ctx := context.Background()
	risky := append(slices.Clone(pngImage), "...RISKY..."...)

	if v, err := s.CheckImage(ctx, app, pngImage); err != nil || v != (Verdict{Suggest: SuggestPass}) {
		t.Errorf("clean image: %+v %v", v, err)
	}
	if v, err := s.CheckImage(ctx, app, risky); err != nil || !v.Risky() || v.Label != 0 {
		t.Errorf("risky image: %+v %v", v, err)
	}
	checks := srv.ImageChecks()
	if len(checks) != 2 || !bytes.Equal(checks[0], pngImage) || !bytes.Equal(checks[1], risky) {
		t.Errorf("the platform received %d images, not the exact bytes sent", len(checks))
	}

	srv.FailPath(imageCheckPath)
	_, err := s.CheckImage(ctx, app, pngImage)
	e := wantError(t, err, "img_sec_check", Unavailable, 0, srv.Tokens()...)
	if e.Message != "the platform answered HTTP 500; try again later" {
		t.Errorf("Message = %q", e.Message)
	}
	srv.HealPath(imageCheckPath)
	if _, err := s.CheckImage(ctx, app, pngImage); err != nil {
		t.Errorf("after HealPath: %v", err)
	}

	_, err = s.CheckImage(ctx, app, nil)
	wantError(t, err, "img_sec_check", Unsupported, 0)
	if got := srv.Calls(imageCheckPath); got != 4 {
		t.Errorf("%d calls, want 4 (none for the empty image)", got)
	}
}

func TestCheckImageQQ(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := App{AppID: "1110000000", Secret: testSecret, Kind: QQ, APIBase: srv.URL}
	if v, err := s.CheckImage(context.Background(), app, pngImage); err != nil || v.Risky() {
		t.Errorf("clean image: %+v %v", v, err)
	}
	if v, err := s.CheckImage(context.Background(), app, []byte("risky bytes")); err != nil || !v.Risky() {
		t.Errorf("risky image: %+v %v", v, err)
	}
	if srv.Calls("/api/json/security/ImgSecCheck") != 2 || len(srv.ImageChecks()) != 2 {
		t.Error("QQ did not use ImgSecCheck")
	}
}

func TestCheckImageAnswers(t *testing.T) {
	for _, tt := range []struct {
		body      string
		wantErr   ErrorCode
		wantErrno int
	}{
		{`{"errcode":0,"errmsg":"ok"}`, "", 0},
		{`{"errmsg":"ok"}`, "", 0},
		{`{"errcode":40006,"errmsg":"invalid media size"}`, Unavailable, 40006},
		{`<html>`, Unavailable, 0},
	} {
		client, _ := recordingClient(cannedToken(tt.body))
		v, err := (&Service{Client: client}).CheckImage(context.Background(), App{AppID: testAppID, Secret: testSecret}, pngImage)
		if tt.wantErr == "" {
			if err != nil || v.Suggest != SuggestPass {
				t.Errorf("%s: got %+v %v", tt.body, v, err)
			}
			continue
		}
		wantError(t, err, "img_sec_check", tt.wantErr, tt.wantErrno, "tok-1")
	}
}

func TestServiceWithSandbox(t *testing.T) {
	s := &Service{Client: &Client{HTTP: &http.Client{Transport: fakeplatform.Sandbox().Transport()}}}
	ctx := context.Background()
	for _, kind := range []Kind{WeChat, QQ} {
		app := App{AppID: testAppID, Secret: "any", Kind: kind} // the real bases: must not be dialled
		if v, err := s.CheckText(ctx, app, testOpenID, "Risky name"); err != nil || !v.Risky() {
			t.Errorf("%s risky text: %+v %v", kind, v, err)
		}
		if v, err := s.CheckText(ctx, app, testOpenID, "Band"); err != nil || v.Suggest != SuggestPass {
			t.Errorf("%s text: %+v %v", kind, v, err)
		}
		if v, err := s.CheckImage(ctx, app, []byte("risky")); err != nil || !v.Risky() {
			t.Errorf("%s risky image: %+v %v", kind, v, err)
		}
		if v, err := s.CheckImage(ctx, app, pngImage); err != nil || v.Risky() {
			t.Errorf("%s image: %+v %v", kind, v, err)
		}
	}
	app := App{AppID: testAppID, Secret: "any"}
	phone, err := s.PhoneNumber(ctx, app, "anything")
	if err != nil || *phone != (Phone{fakeplatform.PhoneNumber, fakeplatform.PhoneNumber, fakeplatform.PhoneCountryCode}) {
		t.Errorf("phone: %v %v", phone, err)
	}
	_, err = s.PhoneNumber(ctx, app, fakeplatform.CodeUsed)
	wantError(t, err, "getuserphonenumber", InvalidCode, 40029)
}
