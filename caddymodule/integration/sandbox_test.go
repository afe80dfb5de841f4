package integration

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// The quick start's tour (docs/tour.md), in sandbox mode: no fake server, no secret;
// the built-in sandbox answers the content checks, stable_token and the
// phone number.
func TestSandboxProfileAndPhone(t *testing.T) {
	const appid = "wxsandboxapp0002"
	g := startGateway(t, gatewayConfig{Block: "\t\tapp " + appid + "\n\t\tsandbox\n\t\tforward_phone\n"})
	// The start-up line tells a newcomer where to point curl.
	if logs := g.Logs(); !strings.Contains(logs, `"try":"curl -X POST`) || !strings.Contains(logs, "/wx/login") {
		t.Error("the sandbox's start-up warning does not say how to try it")
	}
	s := g.login("carol")
	auth := bearer(s.AccessToken)

	g.postJSON("/wx/profile", map[string]string{"nickname": "risky name"}, auth...).Error(t, http.StatusUnprocessableEntity, "content_rejected")
	risky := append(testPNG(t), "risky"...)
	g.postMultipart("/wx/profile", nil, "avatar", "a.png", risky, auth...).Error(t, http.StatusUnprocessableEntity, "content_rejected")

	img := testPNG(t)
	a := readProfileAnswer(t, g.postMultipart("/wx/profile", map[string]string{"nickname": "卡罗尔 🌸"}, "avatar", "a.png", img, auth...))
	if got := g.do(http.MethodGet, strings.TrimPrefix(a.Profile.AvatarURL, g.URL), nil); !bytes.Equal(got.Body, img) {
		t.Errorf("the sandbox-stored avatar does not come back: %d %d bytes", got.Status, len(got.Body))
	}

	p := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "phone-code-1"}, auth...))
	if p.Phone.PhoneNumber != fakeplatform.PhoneNumber {
		t.Errorf("sandbox phone = %+v", *p.Phone)
	}
	g.postJSON("/wx/phone", map[string]string{"code": "invalid"}, auth...).Error(t, http.StatusBadRequest, "invalid_code")

	nick, _ := g.upstreamIdentity(p.AccessToken)
	if nick != "卡罗尔 🌸" || g.Upstream.LastHeaders().Get("X-Wx-Phone") != fakeplatform.PhoneNumber {
		t.Errorf("upstream got nickname %q phone %q", nick, g.Upstream.LastHeaders().Get("X-Wx-Phone"))
	}
}
