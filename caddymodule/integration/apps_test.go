package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const (
	secondAppID = "wxtestapp0000002"
	qqAppID     = "qqtestapp0000001"
)

// severalApps is two WeChat mini programs on the gateway's fake and one QQ
// mini program on a fake of its own (its per-app api_base).
func severalApps(qq *fakeplatform.Server) string {
	return `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
		}
		app ` + secondAppID + ` {
			secret {env.` + secretEnv + `}
		}
		app ` + qqAppID + ` {
			secret {env.` + secretEnv + `}
			platform qq
			api_base ` + qq.URL + `
		}
		api_base {api_base}
		platform_timeout 1s
`
}

func (g *gateway) loginApp(appid, code string) session {
	g.t.Helper()
	return g.postJSON("/wx/login", map[string]string{"code": code, "appid": appid}).Session(g.t, "login "+appid+"/"+code)
}

// One gateway, three mini programs: each login goes to its own platform,
// tokens carry their app, and the unionid ties the person together.
func TestSeveralAppsAndQQ(t *testing.T) {
	qq := fakeplatform.NewServer(t)
	g := startGateway(t, gatewayConfig{Block: severalApps(qq)})
	wechat := g.Platform

	// With several mini programs, a login must say which.
	g.postJSON("/wx/login", map[string]string{"code": "zoe"}).Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/login", map[string]string{"code": "zoe", "appid": "wxnotconfigured"}).Error(t, http.StatusBadRequest, "invalid_request")

	a := g.loginApp(testAppID, "zoe")
	b := g.loginApp(secondAppID, "zoe")
	q := g.loginApp(qqAppID, "zoe")
	if wechat.CodeCalls("zoe") != 2 || qq.CodeCalls("zoe") != 1 {
		t.Errorf("code2session calls: WeChat fake %d (want 2), QQ fake %d (want 1)", wechat.CodeCalls("zoe"), qq.CodeCalls("zoe"))
	}
	for _, s := range []session{a, b, q} {
		if s.UnionID != fakeplatform.UnionID("zoe") {
			t.Errorf("app %s: unionid %q, want the person's %q", s.AppID, s.UnionID, fakeplatform.UnionID("zoe"))
		}
	}
	if a.OpenID == b.OpenID || a.OpenID == q.OpenID {
		t.Errorf("one openid across apps: %s %s %s", a.OpenID, b.OpenID, q.OpenID)
	}

	for _, c := range []struct {
		s      session
		appid  string
		source string
	}{{a, testAppID, "wechat-miniprogram"}, {b, secondAppID, "wechat-miniprogram"}, {q, qqAppID, "qq-miniprogram"}} {
		if r := g.get("/orders", c.s.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("%s: gate refused: %d %s", c.appid, r.Status, r.Body)
		}
		h := g.Upstream.LastHeaders()
		if h.Get("X-Wx-Appid") != c.appid || h.Get("X-Wx-Source") != c.source || h.Get("X-Wx-Openid") != c.s.OpenID || h.Get("X-Wx-Unionid") != fakeplatform.UnionID("zoe") {
			t.Errorf("%s: upstream got appid %q source %q openid %q unionid %q", c.appid, h.Get("X-Wx-Appid"), h.Get("X-Wx-Source"), h.Get("X-Wx-Openid"), h.Get("X-Wx-Unionid"))
		}
	}

	// A QQ app's profile is checked by QQ, with QQ's token.
	readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "zoe"}, bearer(q.AccessToken)...))
	g.postJSON("/wx/profile", map[string]string{"nickname": "risky zoe"}, bearer(q.AccessToken)...).Error(t, http.StatusUnprocessableEntity, "content_rejected")
	if qq.Calls("/api/getToken") != 1 || qq.Calls("/api/json/security/MsgSecCheck") != 2 {
		t.Errorf("QQ fake: getToken %d, MsgSecCheck %d; want 1 and 2", qq.Calls("/api/getToken"), qq.Calls("/api/json/security/MsgSecCheck"))
	}
	if wechat.Calls("/wxa/msg_sec_check") != 0 || wechat.Calls("/cgi-bin/stable_token") != 0 {
		t.Error("a QQ app's check went to WeChat")
	}

	// QQ has no phone-number API, and says so.
	r := g.postJSON("/wx/phone", map[string]string{"code": "p"}, bearer(q.AccessToken)...)
	r.Error(t, http.StatusBadRequest, "invalid_request")
	if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "QQ") {
		t.Errorf("QQ phone message %q does not say QQ has no phone API", msg)
	}
	if n := qq.Calls("/wxa/business/getuserphonenumber"); n != 0 {
		t.Errorf("a QQ phone request reached a platform %d times", n)
	}

	// Remove the QQ app: its tokens stop working; the others go on.
	g.load(gatewayConfig{Block: defaultBlock})
	g.get("/orders", q.AccessToken).Error(t, http.StatusUnauthorized, "token_invalid")
	if r := g.get("/orders", a.AccessToken); r.Status != http.StatusOK {
		t.Errorf("a configured app's token was refused after the reload: %d", r.Status)
	}
}
