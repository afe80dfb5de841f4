package fakeplatform

import (
	"bytes"
	"image/png"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skip2/go-qrcode"
)

// The sandbox's mini-program code is a real QR code of CodeContent: its
// pixels are the modules of that text's QR code, so whoever reads it
// (a phone, a test) learns the scene it was made for.
func TestSandboxCodeIsAQRCodeOfTheScene(t *testing.T) {
	body := `{"scene":"TicketTicketTicketTicketTicket12","page":"pages/scan/index","check_path":true}`
	req := httptest.NewRequest(http.MethodPost, wxaCodePath+"?access_token="+AccessToken("wxapp"), strings.NewReader(body))
	rec := httptest.NewRecorder()
	Sandbox().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("answer %d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	img, err := png.Decode(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	content := CodeContent("pages/scan/index", "TicketTicketTicketTicketTicket12")
	if !strings.Contains(content, "scene=TicketTicketTicketTicketTicket12") {
		t.Fatalf("the content %q does not name the scene", content)
	}
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	modules := q.Bitmap() // with the quiet zone
	side := img.Bounds().Dx()
	if side != wxaCodeSize || img.Bounds().Dy() != wxaCodeSize {
		t.Fatalf("image is %v, want %dx%d", img.Bounds(), wxaCodeSize, wxaCodeSize)
	}
	// Sample the centre of each module: dark where the QR code is.
	at := func(m int) int { return int((float64(m) + 0.5) * float64(side) / float64(len(modules))) }
	for y, row := range modules {
		for x, dark := range row {
			r, _, _, _ := img.At(at(x), at(y)).RGBA()
			if (r < 0x8000) != dark {
				t.Fatalf("module (%d,%d) is not what the QR code of %q has", x, y, content)
			}
		}
	}

	// Failures: no token, a scene too long, an unknown env_version.
	for _, tt := range []struct{ query, body, want string }{
		{"", body, `"errcode":40001`},
		{"?access_token=x", `{"scene":"` + strings.Repeat("a", 33) + `"}`, `"errcode":40169`},
		{"?access_token=x", `{"scene":"a","env_version":""}`, ``},
		{"?access_token=x", `{"scene":"a","env_version":"beta"}`, `"errcode":40097`},
	} {
		rec := httptest.NewRecorder()
		Sandbox().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wxaCodePath+tt.query, strings.NewReader(tt.body)))
		if tt.want == "" {
			if rec.Header().Get("Content-Type") != "image/png" {
				t.Errorf("%s: %s, want an image", tt.body, rec.Body.String())
			}
			continue
		}
		if !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("%s %s: %s, want %s", tt.query, tt.body, rec.Body.String(), tt.want)
		}
	}
}

// Options.Scripted: a page that does not exist gets 41030.
func TestScriptedMissingPage(t *testing.T) {
	srv := NewServer(t)
	token := fetchToken(t, srv, "wxa", "any")
	resp, err := http.Post(srv.URL+wxaCodePath+"?access_token="+token, "application/json",
		strings.NewReader(`{"scene":"abc","page":"`+PageMissing+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	if !strings.Contains(b.String(), `"errcode":41030`) {
		t.Fatalf("missing page: %s", b.String())
	}
	if n := len(srv.WxaCodes()); n != 0 {
		t.Fatalf("%d codes recorded, want none made", n)
	}
}
