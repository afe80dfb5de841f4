package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// testWebToken is a distinctive web access_token, so a leak into any error
// text is found by strings.Contains.
const testWebToken = "WEBTOKEN-must-never-leak-41b7e2"

func webApp(base string) App {
	return App{AppID: testAppID, Secret: testSecret, Kind: WeChatWeb, APIBase: base}
}

// lastRequestClient answers every request with body and records the last one.
func lastRequestClient(got **http.Request, body string) *Client {
	return &Client{HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		*got = req
		rec := httptest.NewRecorder()
		fmt.Fprint(rec, body)
		return rec.Result(), nil
	})}}
}

// cannedServer answers every request with status and body.
func cannedServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain") // as WeChat often does
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWebAccessTokenSuccess(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.AddApp(testAppID, testSecret)
	ws, err := fastClient().WebAccessToken(context.Background(), webApp(srv.URL), "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := WebSession{
		OpenID:      fakeplatform.OpenID(testAppID, "alice"),
		UnionID:     fakeplatform.UnionID("alice"),
		AccessToken: srv.WebTokens()[0],
		Scope:       ScopeUserInfo,
	}
	if ws.OpenID != want.OpenID || ws.UnionID != want.UnionID || ws.AccessToken != want.AccessToken || ws.Scope != want.Scope {
		t.Errorf("got %#v (token %q), want %#v (token %q)", *ws, ws.AccessToken, want, want.AccessToken)
	}
	if !ws.ProfileGranted() {
		t.Error("ProfileGranted() = false for snsapi_userinfo")
	}
	if got := srv.SecretsSeen(); len(got) != 1 || got[0] != testSecret {
		t.Errorf("secrets sent = %q, want [%q]", got, testSecret)
	}
	if got := srv.WebCodeCalls("alice"); got != 1 {
		t.Errorf("platform called %d times, want 1", got)
	}
}

func TestWebAccessTokenRequest(t *testing.T) {
	var got *http.Request
	client := lastRequestClient(&got, `{"access_token":"tok","expires_in":7200,"refresh_token":"ref","openid":"o1","scope":"snsapi_base"}`)
	for _, kind := range []Kind{WeChatWeb, WeChatQR} {
		app := App{AppID: testAppID, Secret: testSecret, Kind: kind}
		ws, err := client.WebAccessToken(context.Background(), app, "c0de/+")
		if err != nil {
			t.Fatal(err)
		}
		if *ws != (WebSession{OpenID: "o1", AccessToken: "tok", Scope: ScopeBase}) {
			t.Errorf("got %+v", *ws)
		}
		if got.Method != http.MethodGet || got.URL.Scheme+"://"+got.URL.Host+got.URL.Path != "https://api.weixin.qq.com/sns/oauth2/access_token" {
			t.Errorf("%s: called %s %s", kind, got.Method, got.URL.Redacted())
		}
		want := url.Values{"appid": {testAppID}, "secret": {testSecret}, "code": {"c0de/+"}, "grant_type": {"authorization_code"}}
		if q := got.URL.Query(); q.Encode() != want.Encode() {
			t.Errorf("%s: query = %v, want %v", kind, q, want)
		}
		if got.Body != nil && got.Body != http.NoBody {
			t.Errorf("%s: a GET with a body", kind)
		}
	}
}

func TestWebAccessTokenFailures(t *testing.T) {
	tests := []struct {
		code      string
		wantCode  ErrorCode
		wantErrno int
		wantCalls int
		restart   bool // the message tells the browser to start the web login again
	}{
		{fakeplatform.CodeInvalid, InvalidCode, 40029, 1, true},
		{fakeplatform.CodeUsed, InvalidCode, 40163, 1, true},
		{fakeplatform.CodeBlocked, LoginBlocked, 40226, 1, false},
		{fakeplatform.CodeLimited, RateLimited, 45011, 1, true},
		{fakeplatform.CodeBusy, Unavailable, -1, 2, false}, // one retry, then give up
		{fakeplatform.CodeQuota, Unavailable, 45009, 1, false},
		{fakeplatform.CodeHTTP500, Unavailable, 0, 1, false},
		{fakeplatform.CodeGarbage, Unavailable, 0, 1, false},
		{fakeplatform.CodeBadOpenID, Unavailable, 0, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			srv := fakeplatform.NewServer(t)
			_, err := fastClient().WebAccessToken(context.Background(), webApp(srv.URL), tt.code)
			e := wantError(t, err, "oauth2_access_token", tt.wantCode, tt.wantErrno, srv.WebTokens()...)
			if tt.restart && !strings.Contains(e.Message, "start the web login again") {
				t.Errorf("Message %q does not tell the browser to start the web login again", e.Message)
			}
			if got := srv.WebCodeCalls(tt.code); got != tt.wantCalls {
				t.Errorf("platform called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestWebAccessTokenBusyOnceRetried(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	ws, err := fastClient().WebAccessToken(context.Background(), webApp(srv.URL), fakeplatform.CodeBusyOnce)
	if err != nil {
		t.Fatal(err)
	}
	if ws.OpenID != fakeplatform.OpenID(testAppID, fakeplatform.CodeBusyOnce) {
		t.Errorf("OpenID = %q", ws.OpenID)
	}
	if got := srv.WebCodeCalls(fakeplatform.CodeBusyOnce); got != 2 {
		t.Errorf("platform called %d times, want 2", got)
	}
}

func TestWebAccessTokenSingleUse(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := fastClient()
	ctx := context.Background()
	first, err := client.WebAccessToken(ctx, webApp(srv.URL), "bob")
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.WebAccessToken(ctx, webApp(srv.URL), "bob")
	e := wantError(t, err, "oauth2_access_token", InvalidCode, 40163, first.AccessToken)
	if !strings.Contains(e.Message, "start the web login again") {
		t.Errorf("Message %q does not tell the browser to start the web login again", e.Message)
	}

	// The same code in another app: another openid, the same unionid.
	other := webApp(srv.URL)
	other.AppID = "wxother"
	second, err := client.WebAccessToken(ctx, other, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if second.OpenID == first.OpenID || second.UnionID != first.UnionID || second.AccessToken == first.AccessToken {
		t.Errorf("other app: %#v; first app: %#v", *second, *first)
	}
}

func TestWebAccessTokenCredentials(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.AddApp(testAppID, testSecret)
	wrong := webApp(srv.URL)
	wrong.Secret = testSecret + "-wrong"
	_, err := fastClient().WebAccessToken(context.Background(), wrong, "carol")
	wantError(t, err, "oauth2_access_token", Unavailable, 40125, wrong.Secret)
}

func TestWebAccessTokenWithoutUnionID(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	ws, err := fastClient().WebAccessToken(context.Background(), webApp(srv.URL), fakeplatform.CodeNoUnion)
	if err != nil {
		t.Fatal(err)
	}
	if ws.UnionID != "" {
		t.Errorf("UnionID = %q, want empty", ws.UnionID)
	}
}

func TestWebAccessTokenRejectsLocally(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	ctx := context.Background()
	for _, code := range []string{"", strings.Repeat("c", 257)} {
		_, err := fastClient().WebAccessToken(ctx, webApp(srv.URL), code)
		e := wantError(t, err, "oauth2_access_token", InvalidCode, 0)
		if !strings.Contains(e.Message, "start the web login again") {
			t.Errorf("Message %q does not tell the browser to start the web login again", e.Message)
		}
	}
	for _, kind := range []Kind{WeChat, QQ, ""} {
		app := webApp(srv.URL)
		app.Kind = kind
		_, err := fastClient().WebAccessToken(ctx, app, "alice")
		wantError(t, err, "oauth2_access_token", Unsupported, 0)
	}
	if got := srv.Calls("/sns/oauth2/access_token"); got != 0 {
		t.Errorf("platform called %d times, want 0", got)
	}
}

// TestWebAccessTokenAnswers covers answers the fake does not script.
func TestWebAccessTokenAnswers(t *testing.T) {
	const openid = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
	tests := []struct {
		name      string
		body      string
		wantErr   ErrorCode // "" for success
		wantErrno int
	}{
		{"full answer", `{"access_token":"` + testWebToken + `","expires_in":7200,"refresh_token":"R","openid":"` + openid + `","scope":"snsapi_userinfo","unionid":"oUnion_-9"}`, "", 0},
		{"errcode 0, no unionid", `{"errcode":0,"errmsg":"ok","access_token":"` + testWebToken + `","openid":"` + openid + `","scope":"snsapi_login"}`, "", 0},
		{"no scope", `{"access_token":"` + testWebToken + `","openid":"` + openid + `"}`, "", 0},
		{"openid missing", `{"access_token":"` + testWebToken + `","scope":"snsapi_base"}`, Unavailable, 0},
		{"openid bad charset", `{"access_token":"` + testWebToken + `","openid":"o/../x"}`, Unavailable, 0},
		{"unionid bad charset", `{"access_token":"` + testWebToken + `","openid":"` + openid + `","unionid":"u nion"}`, Unavailable, 0},
		{"token missing", `{"openid":"` + openid + `","scope":"snsapi_base"}`, Unavailable, 0},
		{"token with a space", `{"access_token":"a b","openid":"` + openid + `"}`, Unavailable, 0},
		{"token too long", `{"access_token":"` + strings.Repeat("t", 1025) + `","openid":"` + openid + `"}`, Unavailable, 0},
		{"token wrong type", `{"access_token":12,"openid":"` + openid + `"}`, Unavailable, 0},
		{"scope malformed", `{"access_token":"` + testWebToken + `","openid":"` + openid + `","scope":"snsapi_base\n"}`, Unavailable, 0},
		{"unknown errcode", `{"errcode":99999,"errmsg":"new"}`, Unavailable, 99999},
		{"missing code 41008", `{"errcode":41008,"errmsg":"missing code"}`, InvalidCode, 41008},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, err := fastClient().WebAccessToken(context.Background(), webApp(cannedServer(t, 200, tt.body)), "alice")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("got %v, want success", err)
				}
				if ws.OpenID != openid || ws.AccessToken != testWebToken {
					t.Errorf("got %#v, token %q", *ws, ws.AccessToken)
				}
				return
			}
			wantError(t, err, "oauth2_access_token", tt.wantErr, tt.wantErrno, testWebToken)
		})
	}
}

// TestWebErrorsHideSecrets: whatever the platform or the wire says, no
// error text carries the secret, a web token or the URL.
func TestWebErrorsHideSecrets(t *testing.T) {
	ws := &WebSession{OpenID: "o1", AccessToken: testWebToken, Scope: ScopeUserInfo}
	echo := `{"errcode":40001,"errmsg":"invalid credential, access_token is ` + testWebToken + `, secret ` + testSecret +
		`, url ` + url.QueryEscape(testWebToken) + ` rid: 1"}`
	base := cannedServer(t, 200, echo)
	leaky := &Client{HTTP: &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		return nil, fmt.Errorf("proxy failed for %s", req.URL) // the URL holds the secret or the token
	})}}
	ctx := context.Background()

	_, err := fastClient().WebUserInfo(ctx, webApp(base), ws)
	e := wantError(t, err, "userinfo", Unavailable, 40001, testWebToken)
	if !strings.Contains(e.Errmsg, "[redacted]") || !strings.Contains(e.Errmsg, "rid: 1") {
		t.Errorf("Errmsg = %q, want the rid kept and the secrets redacted", e.Errmsg)
	}
	// The exchange sends no web token, so there is none to scrub; the
	// secret it sends is.
	_, err = fastClient().WebAccessToken(ctx, webApp(base), "alice")
	e = wantError(t, err, "oauth2_access_token", Unavailable, 40001)
	if !strings.Contains(e.Message, "appid and secret") {
		t.Errorf("Message %q: on the exchange, 40001 means the app's credentials", e.Message)
	}

	_, err = leaky.WebUserInfo(ctx, webApp(""), ws)
	wantError(t, err, "userinfo", Unavailable, 0, testWebToken)
	_, err = leaky.WebAccessToken(ctx, webApp(""), "alice")
	wantError(t, err, "oauth2_access_token", Unavailable, 0, testWebToken)
}

func TestWebUserInfo(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	client := fastClient()
	ctx := context.Background()
	ws, err := client.WebAccessToken(ctx, webApp(srv.URL), "dave")
	if err != nil {
		t.Fatal(err)
	}
	wu, err := client.WebUserInfo(ctx, webApp(srv.URL), ws)
	if err != nil {
		t.Fatal(err)
	}
	want := WebUser{
		OpenID:     fakeplatform.OpenID(testAppID, "dave"),
		UnionID:    fakeplatform.UnionID("dave"),
		Nickname:   fakeplatform.WebNickname("dave"),
		HeadImgURL: fakeplatform.WebHeadImgURL("dave"),
	}
	if *wu != want {
		t.Errorf("got %+v, want %+v", *wu, want)
	}
	if !strings.Contains(wu.Nickname, "🌐") {
		t.Errorf("Nickname %q lost its emoji", wu.Nickname)
	}

	// The user's web token is refused once revoked or expired: only a new
	// login helps.
	srv.RevokeTokens()
	_, err = client.WebUserInfo(ctx, webApp(srv.URL), ws)
	e := wantError(t, err, "userinfo", Unavailable, 40001, ws.AccessToken)
	if !strings.Contains(e.Message, "start the web login again") {
		t.Errorf("Message %q does not tell the browser to start the web login again", e.Message)
	}
	if got := srv.Calls("/sns/userinfo"); got != 2 {
		t.Errorf("userinfo called %d times, want 2 (no retry on 40001)", got)
	}
	srv.ExpireTokens()
	_, err = client.WebUserInfo(ctx, webApp(srv.URL), ws)
	wantError(t, err, "userinfo", Unavailable, 42001, ws.AccessToken)

	// A token that never was.
	made := *ws
	made.AccessToken = testWebToken
	_, err = client.WebUserInfo(ctx, webApp(srv.URL), &made)
	wantError(t, err, "userinfo", Unavailable, 40001, testWebToken)
}

func TestWebUserInfoRequest(t *testing.T) {
	var got *http.Request
	client := lastRequestClient(&got, `{"openid":"o1","nickname":"Band","sex":1,"province":"Guangdong","city":"Guangzhou","country":"CN",`+
		`"headimgurl":"http://thirdwx.qlogo.cn/mmopen/x/132","privilege":[],"unionid":"u1"}`)
	ws := &WebSession{OpenID: "o1", AccessToken: testWebToken, Scope: ScopeLogin}
	wu, err := client.WebUserInfo(context.Background(), App{AppID: testAppID, Secret: testSecret, Kind: WeChatQR}, ws)
	if err != nil {
		t.Fatal(err)
	}
	if *wu != (WebUser{OpenID: "o1", UnionID: "u1", Nickname: "Band", HeadImgURL: "http://thirdwx.qlogo.cn/mmopen/x/132"}) {
		t.Errorf("got %+v", *wu)
	}
	if got.Method != http.MethodGet || got.URL.Scheme+"://"+got.URL.Host+got.URL.Path != "https://api.weixin.qq.com/sns/userinfo" {
		t.Errorf("called %s %s", got.Method, got.URL.Path)
	}
	want := url.Values{"access_token": {testWebToken}, "openid": {"o1"}, "lang": {"zh_CN"}}
	if q := got.URL.Query(); q.Encode() != want.Encode() {
		t.Errorf("query = %v, want %v (and never the secret)", q, want)
	}
}

func TestWebUserInfoAnswers(t *testing.T) {
	const openid = "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
	long := strings.Repeat("长", 70)
	tests := []struct {
		name        string
		wsUnionID   string
		body        string
		wantErr     ErrorCode
		wantErrno   int
		wantUnion   string
		wantNick    string
		wantHeadImg string
	}{
		{"union from the answer", "", `{"openid":"` + openid + `","nickname":"Band","headimgurl":"","unionid":"uA"}`, "", 0, "uA", "Band", ""},
		{"union from the session", "uS", `{"openid":"` + openid + `","nickname":"Band"}`, "", 0, "uS", "Band", ""},
		{"same union", "uS", `{"openid":"` + openid + `","unionid":"uS"}`, "", 0, "uS", "", ""},
		{"nickname cleaned", "", `{"openid":"` + openid + `","nickname":"  Ba\u0000n\u0007d 😀\n"}`, "", 0, "", "Band 😀", ""},
		{"nickname cut", "", `{"openid":"` + openid + `","nickname":"` + long + `"}`, "", 0, "", strings.Repeat("长", 64), ""},
		{"avatar not http", "", `{"openid":"` + openid + `","headimgurl":"javascript:alert(1)"}`, "", 0, "", "", ""},
		{"avatar relative", "", `{"openid":"` + openid + `","headimgurl":"/mmopen/x/132"}`, "", 0, "", "", ""},
		{"avatar too long", "", `{"openid":"` + openid + `","headimgurl":"https://x.test/` + strings.Repeat("a", 1024) + `"}`, "", 0, "", "", ""},
		{"avatar https", "", `{"openid":"` + openid + `","headimgurl":"https://thirdwx.qlogo.cn/mmopen/a/132"}`, "", 0, "", "", "https://thirdwx.qlogo.cn/mmopen/a/132"},
		{"other openid", "", `{"openid":"oSomeoneElse","nickname":"Band"}`, Unavailable, 0, "", "", ""},
		{"no openid", "", `{"nickname":"Band"}`, Unavailable, 0, "", "", ""},
		{"bad unionid", "", `{"openid":"` + openid + `","unionid":"u/1"}`, Unavailable, 0, "", "", ""},
		{"other unionid", "uS", `{"openid":"` + openid + `","unionid":"uOther"}`, Unavailable, 0, "", "", ""},
		{"snsapi_base token", "", `{"errcode":48001,"errmsg":"api unauthorized"}`, Unavailable, 48001, "", "", ""},
		{"bad openid", "", `{"errcode":40003,"errmsg":"invalid openid"}`, Unavailable, 40003, "", "", ""},
		{"nickname wrong type", "", `{"openid":"` + openid + `","nickname":7}`, Unavailable, 0, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := &WebSession{OpenID: openid, UnionID: tt.wsUnionID, AccessToken: testWebToken, Scope: ScopeUserInfo}
			wu, err := fastClient().WebUserInfo(context.Background(), webApp(cannedServer(t, 200, tt.body)), ws)
			if tt.wantErr != "" {
				wantError(t, err, "userinfo", tt.wantErr, tt.wantErrno, testWebToken)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want success", err)
			}
			want := WebUser{OpenID: openid, UnionID: tt.wantUnion, Nickname: tt.wantNick, HeadImgURL: tt.wantHeadImg}
			if *wu != want {
				t.Errorf("got %+v, want %+v", *wu, want)
			}
		})
	}
}

func TestWebUserInfoRejectsLocally(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	ctx := context.Background()
	for _, ws := range []*WebSession{nil, {OpenID: "o1"}, {AccessToken: testWebToken}, {OpenID: "o1", AccessToken: "a b"}} {
		_, err := fastClient().WebUserInfo(ctx, webApp(srv.URL), ws)
		wantError(t, err, "userinfo", Unsupported, 0, testWebToken)
	}
	app := webApp(srv.URL)
	app.Kind = QQ
	_, err := fastClient().WebUserInfo(ctx, app, &WebSession{OpenID: "o1", AccessToken: testWebToken})
	wantError(t, err, "userinfo", Unsupported, 0, testWebToken)
	if got := srv.Calls("/sns/userinfo"); got != 0 {
		t.Errorf("platform called %d times, want 0", got)
	}
}

func TestWebSessionHidesToken(t *testing.T) {
	ws := WebSession{OpenID: "oAlice", UnionID: "uAlice", AccessToken: testWebToken, Scope: ScopeUserInfo}
	var texts []string
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
		texts = append(texts, fmt.Sprintf(format, ws), fmt.Sprintf(format, &ws))
	}
	texts = append(texts, fmt.Sprint(ws), fmt.Sprintln(&ws), fmt.Sprintf("%v", []*WebSession{&ws}), fmt.Sprintf("%+v", struct{ S WebSession }{ws}))
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("login", "session", ws, "ptr", &ws)
	texts = append(texts, logged.String())
	encoded, err := json.Marshal(ws)
	if err != nil {
		t.Fatal(err)
	}
	texts = append(texts, string(encoded))
	for _, text := range texts {
		if strings.Contains(text, testWebToken) {
			t.Errorf("%q shows the access_token", text)
		}
	}
	if got, want := ws.String(), "web session(openid=oAlice, unionid=uAlice, scope=snsapi_userinfo)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := fmt.Sprintf("%#v", ws); got != "platform."+ws.String() {
		t.Errorf("%%#v = %q", got)
	}
	if !strings.Contains(logged.String(), `"openid":"oAlice"`) {
		t.Errorf("slog output %s lost the openid", logged.String())
	}
}

func TestWebSessionProfileGranted(t *testing.T) {
	for scope, want := range map[string]bool{
		"snsapi_base": false, "": false, "snsapi_userinfo": true, "snsapi_login": true,
		"snsapi_base,snsapi_userinfo": true, "snsapi_userinfox": false,
	} {
		if got := (WebSession{Scope: scope}).ProfileGranted(); got != want {
			t.Errorf("scope %q: ProfileGranted() = %v, want %v", scope, got, want)
		}
	}
}

func TestAuthorizeURL(t *testing.T) {
	const redirect = "https://example.com/wx/web/callback?next=%2Fa%20b&x=1"
	const encoded = "https%3A%2F%2Fexample.com%2Fwx%2Fweb%2Fcallback%3Fnext%3D%252Fa%2520b%26x%3D1"
	web := App{AppID: testAppID, Kind: WeChatWeb}
	qr := App{AppID: testAppID, Kind: WeChatQR}
	tests := []struct {
		name     string
		openBase string
		app      App
		scope    string
		want     string
	}{
		{"web userinfo", "", web, ScopeUserInfo,
			"https://open.weixin.qq.com/connect/oauth2/authorize?appid=" + testAppID + "&redirect_uri=" + encoded +
				"&response_type=code&scope=snsapi_userinfo&state=St4te#wechat_redirect"},
		{"web default scope", "", web, "",
			"https://open.weixin.qq.com/connect/oauth2/authorize?appid=" + testAppID + "&redirect_uri=" + encoded +
				"&response_type=code&scope=snsapi_base&state=St4te#wechat_redirect"},
		{"qr ignores scope", "", qr, ScopeUserInfo,
			"https://open.weixin.qq.com/connect/qrconnect?appid=" + testAppID + "&redirect_uri=" + encoded +
				"&response_type=code&scope=snsapi_login&state=St4te#wechat_redirect"},
		{"open base with a path and slash", "http://127.0.0.1:8080/wx/web/sandbox/", qr, "",
			"http://127.0.0.1:8080/wx/web/sandbox/connect/qrconnect?appid=" + testAppID + "&redirect_uri=" + encoded +
				"&response_type=code&scope=snsapi_login&state=St4te#wechat_redirect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AuthorizeURL(tt.openBase, tt.app, tt.scope, redirect, "St4te")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			u, err := url.Parse(got)
			if err != nil || u.Query().Get("redirect_uri") != redirect || u.Fragment != "wechat_redirect" {
				t.Errorf("%s does not decode back to the redirect_uri", got)
			}
		})
	}
	if DefaultOpenBase != "https://open.weixin.qq.com" {
		t.Errorf("DefaultOpenBase = %q", DefaultOpenBase)
	}
	if _, err := AuthorizeURL("", web, "", redirect, strings.Repeat("a", 128)); err != nil {
		t.Errorf("a 128-byte state was refused: %v", err)
	}
}

func TestAuthorizeURLRefusals(t *testing.T) {
	const redirect = "https://example.com/cb"
	web := App{AppID: testAppID, Kind: WeChatWeb}
	tests := []struct {
		name                      string
		openBase                  string
		app                       App
		scope, redirectURI, state string
		want                      ErrorCode
	}{
		{"mini program", "", App{AppID: testAppID, Kind: WeChat}, "", redirect, "s", Unsupported},
		{"zero kind", "", App{AppID: testAppID}, "", redirect, "s", Unsupported},
		{"qq", "", App{AppID: testAppID, Kind: QQ}, "", redirect, "s", Unsupported},
		{"no appid", "", App{Kind: WeChatWeb}, "", redirect, "s", Unsupported},
		{"web with snsapi_login", "", web, ScopeLogin, redirect, "s", Unsupported},
		{"web with a made-up scope", "", web, "snsapi_all", redirect, "s", Unsupported},
		{"empty state", "", web, "", redirect, "", Unsupported},
		{"state with a dash", "", web, "", redirect, "ab-cd", Unsupported},
		{"state with a space", "", web, "", redirect, "ab cd", Unsupported},
		{"state not ASCII", "", web, "", redirect, "状态", Unsupported},
		{"state 129 bytes", "", web, "", redirect, strings.Repeat("a", 129), Unsupported},
		{"relative redirect", "", web, "", "/wx/web/callback", "s", Unsupported},
		{"javascript redirect", "", web, "", "javascript:alert(1)", "s", Unsupported},
		{"redirect with credentials", "", web, "", "https://u:p@example.com/cb", "s", Unsupported},
		{"empty redirect", "", web, "", "", "s", Unsupported},
		{"redirect with a space", "", web, "", "https://example.com/a b", "s", Unsupported},
		{"open base without scheme", "open.weixin.qq.com", web, "", redirect, "s", Unavailable},
		{"open base ftp", "ftp://open.weixin.qq.com", web, "", redirect, "s", Unavailable},
		{"open base with a query", "https://open.test/?a=1", web, "", redirect, "s", Unavailable},
		{"open base with a fragment", "https://open.test/#x", web, "", redirect, "s", Unavailable},
		{"open base unparsable", "http://[::1", web, "", redirect, "s", Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AuthorizeURL(tt.openBase, tt.app, tt.scope, tt.redirectURI, tt.state)
			if err == nil {
				t.Fatalf("got %q, want an error", got)
			}
			e := AsError(err)
			if e == nil || e.Code != tt.want || e.API != "authorize" || e.Message == "" || got != "" {
				t.Fatalf("got %q, %#v; want an authorize %s", got, err, tt.want)
			}
			checkNoLeak(t, e)
		})
	}
}

// TestWebLoginAgainstFake goes the whole way: the authorize page, its
// redirect, the exchange and the profile, twice for one user.
func TestWebLoginAgainstFake(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	srv.AddApp(testAppID, testSecret)
	client := fastClient()
	ctx := context.Background()
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	login := func(app App, scope, user string) (*WebSession, url.Values) {
		t.Helper()
		target, err := AuthorizeURL(srv.URL, app, scope, "https://site.test/wx/web/callback?next=%2Fhome", "State1")
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			target = strings.Replace(target, "#", "&"+fakeplatform.FakeUserParam+"="+user+"#", 1)
		}
		resp, err := noRedirects.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil {
			t.Fatalf("authorize page answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		back := loc.Query()
		if loc.Host != "site.test" || back.Get("next") != "/home" || back.Get("state") != "State1" {
			t.Errorf("redirected to %s", loc)
		}
		ws, err := client.WebAccessToken(ctx, app, back.Get("code"))
		if err != nil {
			t.Fatal(err)
		}
		return ws, back
	}

	web := webApp(srv.URL)
	first, back := login(web, ScopeUserInfo, "")
	second, _ := login(web, ScopeUserInfo, "")
	if first.OpenID != fakeplatform.OpenID(testAppID, fakeplatform.ScriptedWebUser) || second.OpenID != first.OpenID {
		t.Errorf("logins of one user: %v then %v", first, second)
	}
	wu, err := client.WebUserInfo(ctx, web, second)
	if err != nil {
		t.Fatal(err)
	}
	if wu.Nickname != fakeplatform.WebNickname(fakeplatform.ScriptedWebUser) || wu.UnionID != fakeplatform.UnionID(fakeplatform.ScriptedWebUser) {
		t.Errorf("profile %+v", *wu)
	}
	// The code's second use fails like the real platform's.
	_, err = client.WebAccessToken(ctx, web, back.Get("code"))
	wantError(t, err, "oauth2_access_token", InvalidCode, 40163, first.AccessToken)

	// snsapi_base: the exchange says so, and the profile is refused.
	base, _ := login(web, ScopeBase, "erin")
	if base.Scope != ScopeBase || base.ProfileGranted() || base.UnionID != fakeplatform.UnionID("erin") {
		t.Errorf("snsapi_base login: %v", base)
	}
	_, err = client.WebUserInfo(ctx, web, base)
	wantError(t, err, "userinfo", Unavailable, 48001, base.AccessToken)

	// QR login: snsapi_login, with a profile.
	qr := web
	qr.Kind = WeChatQR
	qrSession, _ := login(qr, "", "erin")
	if qrSession.Scope != ScopeLogin || !qrSession.ProfileGranted() || qrSession.UnionID != base.UnionID {
		t.Errorf("QR login: %v", qrSession)
	}

	reqs := srv.AuthorizeRequests()
	if len(reqs) != 4 || reqs[3].Path != "/connect/qrconnect" || reqs[0].Scope != ScopeUserInfo || reqs[2].Scope != ScopeBase {
		t.Errorf("authorize requests: %+v", reqs)
	}
}

func TestWebLoginSandboxTransport(t *testing.T) {
	client := &Client{HTTP: &http.Client{Transport: fakeplatform.Sandbox().Transport()}, RetryDelay: time.Millisecond}
	app := App{AppID: testAppID, Secret: "anything", Kind: WeChatWeb} // the real base: must not be dialled
	ctx := context.Background()
	for range 2 { // sandbox codes are reusable
		ws, err := client.WebAccessToken(ctx, app, "alice")
		if err != nil {
			t.Fatal(err)
		}
		want := WebSession{OpenID: fakeplatform.OpenID(testAppID, "alice"), UnionID: fakeplatform.UnionID("alice"),
			AccessToken: fakeplatform.WebAccessToken(testAppID, "alice"), Scope: fakeplatform.WebScope}
		if *ws != want {
			t.Errorf("got %#v, want %#v", *ws, want)
		}
		wu, err := client.WebUserInfo(ctx, app, ws)
		if err != nil {
			t.Fatal(err)
		}
		if *wu != (WebUser{OpenID: ws.OpenID, UnionID: fakeplatform.UnionID("alice"), Nickname: fakeplatform.Nickname("alice")}) {
			t.Errorf("profile %+v", *wu)
		}
	}
	for code, want := range map[string]ErrorCode{
		fakeplatform.CodeInvalid: InvalidCode,
		fakeplatform.CodeUsed:    InvalidCode,
		fakeplatform.CodeBlocked: LoginBlocked,
		fakeplatform.CodeBusy:    Unavailable,
		fakeplatform.CodeLimited: RateLimited,
	} {
		_, err := client.WebAccessToken(ctx, app, code)
		if e := AsError(err); e == nil || e.Code != want {
			t.Errorf("code %q: got %v, want %s", code, err, want)
		}
	}
}
