package fakeplatform

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// serve sends GET target to the engine and decodes the JSON answer.
func serve(t *testing.T, e *Engine, target string) map[string]any {
	t.Helper()
	status, answer := get(t, e, target)
	if status != http.StatusOK {
		t.Fatalf("GET %s: status %d", target, status)
	}
	return answer
}

func TestLoginStats(t *testing.T) {
	e := New(Options{Stateful: true})
	e.AddApp("wxbench", "right")
	exchange := func(appid, secret, code string) map[string]any {
		q := url.Values{"appid": {appid}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
		return serve(t, e, "/sns/jscode2session?"+q.Encode())
	}
	if a := exchange("wxbench", "right", "c1"); a["openid"] != OpenID("wxbench", "c1") || a["session_key"] == SessionKey("wxbench", "c1") {
		t.Errorf("first exchange: %v", a)
	}
	if a := exchange("wxbench", "right", "c1"); a["errcode"] != 40163.0 {
		t.Errorf("second exchange: %v", a)
	}
	for _, tt := range []struct {
		appid, secret, code string
		errcode             float64
	}{{"wxbench", "wrong", "c2", 40125}, {"wxother", "right", "c3", 40013}, {"wxbench", "right", "", 40029}} {
		if a := exchange(tt.appid, tt.secret, tt.code); a["errcode"] != tt.errcode {
			t.Errorf("%+v: %v", tt, a)
		}
	}
	exchange("wxbench", "right", "c4")
	want := LoginStats{Calls: 3, DistinctCodes: 2, MaxCallsPerCode: 2, CodesRepeated: 1, Rejected: 3}
	if got := e.LoginStats(); got != want {
		t.Errorf("LoginStats = %+v, want %+v", got, want)
	}

	e.ResetCounters()
	if got := e.LoginStats(); got != (LoginStats{}) || e.Calls(code2SessionPath) != 0 || e.CodeCalls("c1") != 0 {
		t.Errorf("after ResetCounters: %+v, %d calls", got, e.Calls(code2SessionPath))
	}
	if a := exchange("wxbench", "right", "c4"); a["errcode"] != 40163.0 {
		t.Errorf("a code used before ResetCounters: %v", a)
	}
	if got := e.LoginStats(); got != (LoginStats{Calls: 1, DistinctCodes: 1, MaxCallsPerCode: 1}) {
		t.Errorf("LoginStats = %+v", got)
	}
	if len(e.SecretsSeen()) != 7 {
		t.Errorf("SecretsSeen = %q: the recordings were reset too", e.SecretsSeen())
	}
}

// Stateful alone, as the benchmark runs it: single-use codes, but no
// scripted codes and the sandbox's web users.
func TestStatefulWithoutScript(t *testing.T) {
	e := New(Options{Stateful: true})
	q := url.Values{"appid": {"wxa"}, "secret": {"s"}, "js_code": {CodeQuota}, "grant_type": {"authorization_code"}}
	if a := serve(t, e, "/sns/jscode2session?"+q.Encode()); a["openid"] != OpenID("wxa", CodeQuota) {
		t.Errorf("%s without Scripted: %v", CodeQuota, a)
	}

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/connect/oauth2/authorize?"+authorizeQuery("https://site.test/cb"), nil))
	loc, _ := url.Parse(rec.Header().Get("Location"))
	code := loc.Query().Get("code")
	if rec.Code != http.StatusFound || WebUser(code) != DefaultWebUser || code == DefaultWebUser {
		t.Fatalf("authorize page: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	web := url.Values{"appid": {"wxweb"}, "secret": {"s"}, "code": {code}, "grant_type": {"authorization_code"}}
	a := serve(t, e, "/sns/oauth2/access_token?"+web.Encode())
	token, _ := a["access_token"].(string)
	if a["openid"] != OpenID("wxweb", DefaultWebUser) || a["scope"] != "snsapi_userinfo" || token == WebAccessToken("wxweb", DefaultWebUser) {
		t.Errorf("exchange of %q: %v", code, a)
	}
	if info := serve(t, e, userInfoURL(token, OpenID("wxweb", DefaultWebUser))); info["nickname"] != Nickname(DefaultWebUser) {
		t.Errorf("userinfo: %v", info)
	}
	if a := serve(t, e, "/sns/oauth2/access_token?"+web.Encode()); a["errcode"] != 40163.0 {
		t.Errorf("second exchange: %v", a)
	}
}
