package platform

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// The code is the image the platform made for the scene, page and version
// asked for; a version other than release is asked without the page check.
func TestUnlimitedCode(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	ctx := context.Background()
	img, err := s.UnlimitedCode(ctx, app, CodeRequest{Scene: "Tk1", Page: "pages/scan/index", EnvVersion: EnvRelease})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fakeplatform.CodePNG("pages/scan/index", "Tk1")
	if img.ContentType != "image/png" || !bytes.Equal(img.Data, want) {
		t.Fatalf("image %s of %d bytes, want the fake's PNG", img.ContentType, len(img.Data))
	}
	if _, err := s.UnlimitedCode(ctx, app, CodeRequest{Scene: "Tk2", EnvVersion: EnvTrial}); err != nil {
		t.Fatal(err)
	}
	codes := srv.WxaCodes()
	if len(codes) != 2 {
		t.Fatalf("%d codes made, want 2", len(codes))
	}
	first, second := codes[0], codes[1]
	if first.Scene != "Tk1" || first.Page != "pages/scan/index" || first.EnvVersion != "" || first.CheckPath == nil || !*first.CheckPath {
		t.Errorf("release code asked as %+v: want the page checked and no env_version", first)
	}
	if second.Page != "" || second.EnvVersion != EnvTrial || second.CheckPath == nil || *second.CheckPath {
		t.Errorf("trial code asked as %+v: want no page, env_version trial, check_path false", second)
	}
}

// The platform's refusals are the operator's to fix: platform_unavailable
// with a message that says what, never the token.
func TestUnlimitedCodeErrors(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	ctx := context.Background()
	_, err := s.UnlimitedCode(ctx, app, CodeRequest{Scene: "Tk3", Page: fakeplatform.PageMissing})
	e := AsError(err)
	if e == nil || e.Code != Unavailable || e.Errcode != 41030 || !strings.Contains(e.Message, "page") {
		t.Fatalf("missing page: %v", err)
	}
	for _, tok := range srv.Tokens() {
		if strings.Contains(err.Error(), tok) {
			t.Fatal("the access_token is in the error")
		}
	}
	for _, scene := range []string{"", strings.Repeat("a", 33), "中文", "a%20b"} {
		if _, err := s.UnlimitedCode(ctx, app, CodeRequest{Scene: scene}); AsError(err) == nil || AsError(err).Code != Unsupported {
			t.Errorf("scene %q: %v, want Unsupported without a call", scene, err)
		}
	}
	qq := app
	qq.Kind = QQ
	if _, err := s.UnlimitedCode(ctx, qq, CodeRequest{Scene: "Tk4"}); AsError(err) == nil || AsError(err).Code != Unsupported {
		t.Errorf("QQ app: %v", err)
	}
	srv.FailPath("/wxa/getwxacodeunlimit")
	if _, err := s.UnlimitedCode(ctx, app, CodeRequest{Scene: "Tk5"}); AsError(err) == nil || AsError(err).Code != Unavailable {
		t.Errorf("HTTP 500: %v", err)
	}
}

// An answer is an image by its bytes, JPEG or PNG, whatever its
// Content-Type; JSON without an errcode, or bytes of no known image, are
// not the code.
func TestUnlimitedCodeAnswers(t *testing.T) {
	var body []byte
	var contentType string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/cgi-bin/stable_token" {
			w.Write([]byte(`{"access_token":"tok","expires_in":7200}`))
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}))
	defer srv.Close()
	s := newService(nil)
	app := testApp(srv.URL)
	for _, tt := range []struct {
		contentType string
		body        string
		want        string // the image's type, "" for an error
	}{
		{"image/jpeg", "\xff\xd8\xff\xe0JFIF", "image/jpeg"},
		{"text/plain", "\xff\xd8\xff\xe0JFIF", "image/jpeg"},
		{"image/png", "\x89PNG\r\n\x1a\nrest", "image/png"},
		{"application/json", `{"errcode":0,"errmsg":"ok"}`, ""},
		{"image/gif", "GIF89a", ""},
		{"application/json", `{"errcode":45009,"errmsg":"quota"}`, ""},
	} {
		body, contentType = []byte(tt.body), tt.contentType
		img, err := s.UnlimitedCode(context.Background(), app, CodeRequest{Scene: "Tk"})
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s %q: got an image, want an error", tt.contentType, tt.body)
		case tt.want != "" && (err != nil || img.ContentType != tt.want || string(img.Data) != tt.body):
			t.Errorf("%s %q: %v %v, want %s", tt.contentType, tt.body, img, err, tt.want)
		}
	}
}
