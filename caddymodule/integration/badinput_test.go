package integration

import (
	"net/http"
	"strings"
	"testing"
)

func TestLoginBadInput(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	jsonCT := []string{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name    string
		method  string
		body    string
		headers []string
		status  int
		error   string
	}{
		{"malformed JSON", "POST", `{"code":`, jsonCT, 400, "invalid_request"},
		{"not an object", "POST", `["alice"]`, jsonCT, 400, "invalid_request"},
		{"empty body", "POST", ``, jsonCT, 400, "invalid_request"},
		{"missing code", "POST", `{"appid":"` + testAppID + `"}`, jsonCT, 400, "invalid_request"},
		{"empty code", "POST", `{"code":""}`, jsonCT, 400, "invalid_request"},
		{"mistyped code", "POST", `{"code":12345}`, jsonCT, 400, "invalid_request"},
		{"mistyped appid", "POST", `{"code":"a","appid":true}`, jsonCT, 400, "invalid_request"},
		{"huge code", "POST", `{"code":"` + strings.Repeat("c", 1000) + `"}`, jsonCT, 400, "invalid_request"},
		{"trailing garbage", "POST", `{"code":"a"} {"code":"b"}`, jsonCT, 400, "invalid_request"},
		{"unknown appid", "POST", `{"code":"a","appid":"wxnotconfigured"}`, jsonCT, 400, "invalid_request"},
		{"form content type", "POST", `code=a`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"no content type", "POST", `{"code":"a"}`, nil, 415, "unsupported_media_type"},
		{"text content type", "POST", `{"code":"a"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"oversized body", "POST", `{"code":"a","pad":"` + strings.Repeat("x", 100<<10) + `"}`, jsonCT, 413, "body_too_large"},
		{"wrong method GET", "GET", ``, nil, 405, "invalid_request"},
		{"wrong method PUT", "PUT", `{"code":"a"}`, jsonCT, 405, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := g.do(tc.method, "/wx/login", body, tc.headers...)
			r.Error(t, tc.status, tc.error)
			if tc.status == 405 && r.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
		})
	}
	// JSON with a charset parameter is JSON.
	r := g.do("POST", "/wx/login", []byte(`{"code":"charset"}`), "Content-Type", "application/json; charset=utf-8")
	if r.Status != http.StatusOK {
		t.Errorf("charset parameter refused: %d %s", r.Status, r.Body)
	}
	// Unknown endpoints under the prefix are ours, and answered as JSON.
	g.do("GET", "/wx/nothing-here", nil).Error(t, http.StatusNotFound, "invalid_request")
	// Nothing of this reached the platform with a bad code or the upstream.
	if g.Upstream.Hits() != 0 {
		t.Errorf("bad input reached the upstream")
	}
	if n := g.Platform.Calls("/sns/jscode2session"); n != 1 {
		t.Errorf("platform calls = %d, want 1 (only the good charset login)", n)
	}
}

func TestAppIDSelection(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: `
		app wxfirstapp000001 {
			secret {env.` + secretEnv + `}
		}
		app wxsecondapp00002 {
			secret {env.` + secretEnv + `}
		}
		api_base {api_base}
`})
	// Two apps: the login must say which.
	g.postJSON("/wx/login", map[string]string{"code": "ivy"}).Error(t, http.StatusBadRequest, "invalid_request")
	r := g.postJSON("/wx/login", map[string]string{"code": "ivy", "appid": "wxsecondapp00002"})
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if m["appid"] != "wxsecondapp00002" {
		t.Errorf("appid = %v", m["appid"])
	}
	if r := g.get("/", m["access_token"].(string)); r.Status != http.StatusOK || g.Upstream.LastHeaders().Get("X-Wx-Appid") != "wxsecondapp00002" {
		t.Errorf("gate: %d, X-WX-APPID %q", r.Status, g.Upstream.LastHeaders().Get("X-Wx-Appid"))
	}
}

func TestEndpointsPrefix(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\tendpoints /auth/wx\n"})
	r := g.postJSON("/auth/wx/login", map[string]string{"code": "jay"})
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	// The old prefix is just another gated path now.
	g.postJSON("/wx/login", map[string]string{"code": "jay"}).Error(t, http.StatusUnauthorized, "login_required")
}
