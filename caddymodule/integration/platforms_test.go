package integration

import (
	"crypto/rsa"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// The Douyin, Alipay and Baidu mini programs of these tests, on the
// gateway's fake platform (which serves every platform's paths).
const (
	douyinAppID = "tt1234567890abcdef"
	alipayAppID = "2021000000000001"
	baiduAppID  = "BaiduAppKey0000001" // a Baidu app is named by its App Key
)

// wrongKey is a key no platform knows, made once for the whole package.
var wrongKey = sync.OnceValue(fakeplatform.NewKey)

// keyFiles writes the keys' files as an operator would: the app's private
// key (the sandbox's, which the fake holds) and Alipay's public key, and
// a wrong one of each.
type keyFiles struct {
	appPrivate, alipayPublic, wrongPrivate, wrongPublic string
}

func writeKeyFiles(t *testing.T) keyFiles {
	t.Helper()
	dir := t.TempDir()
	keys := fakeplatform.SandboxKeys()
	write := func(name string, pem []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return keyFiles{
		appPrivate:   write("app_private.pem", fakeplatform.PrivateKeyPEM(keys.App)),
		alipayPublic: write("alipay_public.pem", fakeplatform.PublicKeyPEM(keys.Alipay)),
		wrongPrivate: write("wrong_private.pem", fakeplatform.PrivateKeyPEM(wrongKey())),
		wrongPublic:  write("wrong_public.pem", fakeplatform.PublicKeyPEM(wrongKey())),
	}
}

// otherPlatforms is the three apps' configuration with these key files.
func otherPlatforms(douyinKey, alipayKey, alipayPublic string) string {
	return `
		app ` + douyinAppID + ` {
			platform douyin
			secret {env.` + secretEnv + `}
			private_key {file.` + douyinKey + `}
		}
		app ` + alipayAppID + ` {
			platform alipay
			private_key {file.` + alipayKey + `}
			alipay_public_key {file.` + alipayPublic + `}
		}
		app ` + baiduAppID + ` {
			platform baidu
			secret {env.` + secretEnv + `}
		}
		api_base {api_base}
		platform_timeout 1s
`
}

// TestOtherPlatformsEndToEnd: for Douyin, Alipay and Baidu, through a real
// Caddy and the fake platform's APIs: login, the gate's identity headers,
// refresh, profile with the content checks, /me and the phone number.
func TestOtherPlatformsEndToEnd(t *testing.T) {
	k := writeKeyFiles(t)
	g := startGateway(t, gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.alipayPublic) + "\t\tforward_phone\n"})
	for _, p := range []struct {
		appid, source string
		idType        string
		checksImages  bool
		phone         bool
	}{
		{douyinAppID, "douyin-miniprogram", "", true, true},
		{alipayAppID, "alipay-miniprogram", "open_id", false, false},
		{baiduAppID, "baidu-miniprogram", "", false, false},
	} {
		t.Run(p.source, func(t *testing.T) {
			s := g.loginApp(p.appid, "alice")
			if s.OpenID != fakeplatform.OpenID(p.appid, "alice") || s.AppID != p.appid || s.IDType != p.idType {
				t.Errorf("session %+v", s)
			}
			// The same code again (a retry) is the same user, and the
			// platform is asked once.
			if again := g.loginApp(p.appid, "alice"); again.OpenID != s.OpenID {
				t.Errorf("a retried code logged in %q", again.OpenID)
			}
			if n := g.Platform.CodeCalls("alice"); n < 1 {
				t.Errorf("the platform saw %d exchanges of alice", n)
			}

			if r := g.get("/orders", s.AccessToken, "X-WX-SOURCE", "forged", "X-Wx-Openid", "forged"); r.Status != http.StatusOK {
				t.Fatalf("gate refused the token: %d %s", r.Status, r.Body)
			}
			h := g.Upstream.LastHeaders()
			for name, want := range map[string]string{"X-Wx-Openid": s.OpenID, "X-Wx-Appid": p.appid, "X-Wx-Source": p.source} {
				if got := h.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("upstream %s = %q, want [%q]", name, got, want)
				}
			}

			r2 := g.refresh(s.RefreshToken).Session(t, "refresh")
			if r2.OpenID != s.OpenID || r2.IDType != p.idType {
				t.Errorf("refreshed session %+v", r2)
			}
			if r := g.get("/orders", r2.AccessToken); r.Status != http.StatusOK || g.Upstream.LastHeaders().Get("X-Wx-Source") != p.source {
				t.Errorf("the refreshed token: %d, source %q", r.Status, g.Upstream.LastHeaders().Get("X-Wx-Source"))
			}

			auth := bearer(r2.AccessToken)
			g.postJSON("/wx/profile", map[string]string{"nickname": "risky Ann"}, auth...).Error(t, http.StatusUnprocessableEntity, "content_rejected")
			risky := append(testPNG(t), "risky"...)
			r := g.postMultipart("/wx/profile", map[string]string{"nickname": "Ann"}, "avatar", "a.png", risky, auth...)
			if p.checksImages {
				r.Error(t, http.StatusUnprocessableEntity, "content_rejected")
				r = g.postMultipart("/wx/profile", map[string]string{"nickname": "Ann"}, "avatar", "a.png", testPNG(t), auth...)
			}
			a := readProfileAnswer(t, r)
			if nick, _ := g.upstreamIdentity(a.AccessToken); nick != "Ann" {
				t.Errorf("upstream nickname %q", nick)
			}
			if m := g.me(a.AccessToken); !m.HasProfile || m.OpenID != s.OpenID {
				t.Errorf("me %+v", m)
			}
			checked := 0
			for _, c := range g.Platform.TextChecks() {
				if c.Content == "risky Ann" {
					checked++
				}
			}
			if checked == 0 {
				t.Error("the platform's text check never saw the nickname")
			}

			phone := g.postJSON("/wx/phone", map[string]string{"code": "phone-" + p.appid}, bearer(a.AccessToken)...)
			if !p.phone {
				phone.Error(t, http.StatusBadRequest, "invalid_request")
				if !strings.Contains(string(phone.Body), "no server API") {
					t.Errorf("the refusal does not say why: %s", phone.Body)
				}
				return
			}
			pa := readPhoneAnswer(t, phone)
			if pa.Phone.PurePhoneNumber != fakeplatform.PhoneNumber {
				t.Errorf("phone %+v", *pa.Phone)
			}
			g.get("/orders", pa.AccessToken)
			if got := g.Upstream.LastHeaders().Get("X-Wx-Phone"); got != fakeplatform.PhoneNumber {
				t.Errorf("X-WX-PHONE %q", got)
			}
			g.postJSON("/wx/phone", map[string]string{"code": "invalid"}, bearer(a.AccessToken)...).Error(t, http.StatusBadRequest, "invalid_code")
		})
	}
	assertPhoneNotLogged(t, g.Logs(), fakeplatform.PhoneNumber)
}

// TestOtherPlatformsFailures: each platform's own failure answers become
// the contract's errors.
func TestOtherPlatformsFailures(t *testing.T) {
	k := writeKeyFiles(t)
	g := startGateway(t, gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.alipayPublic)})
	for _, appid := range []string{douyinAppID, alipayAppID, baiduAppID} {
		login := func(code string) *response {
			return g.postJSON("/wx/login", map[string]string{"code": code, "appid": appid})
		}
		login("invalid").Error(t, http.StatusBadRequest, "invalid_code")
		login("used").Error(t, http.StatusBadRequest, "invalid_code")
		login("busy").Error(t, http.StatusBadGateway, "platform_unavailable")
		login("garbage").Error(t, http.StatusBadGateway, "platform_unavailable")
		login("http500").Error(t, http.StatusBadGateway, "platform_unavailable")
		login("badopenid").Error(t, http.StatusBadGateway, "platform_unavailable")
		r := login("limited")
		r.Error(t, http.StatusTooManyRequests, "rate_limited")
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: rate_limited without Retry-After", appid)
		}
		g.postJSON("/wx/login", map[string]string{"appid": appid}).Error(t, http.StatusBadRequest, "invalid_request")
	}
}

// TestOtherPlatformsWrongKeys: a wrong key or secret is caught, and nobody
// logs in: Alipay refuses a request signed with another private key; an
// answer does not verify with another Alipay public key; a Douyin phone
// number does not decrypt with another key; Douyin and Baidu refuse a
// wrong secret.
func TestOtherPlatformsWrongKeys(t *testing.T) {
	k := writeKeyFiles(t)
	g := startGateway(t, gatewayConfig{Block: otherPlatforms(k.wrongPrivate, k.wrongPrivate, k.alipayPublic)})
	g.postJSON("/wx/login", map[string]string{"code": "eve", "appid": alipayAppID}).Error(t, http.StatusBadGateway, "platform_unavailable")
	if logs := g.Logs(); !strings.Contains(logs, "isv.invalid-signature") || !strings.Contains(logs, "private_key") {
		t.Error("the log does not say Alipay refused the signature")
	}
	s := g.loginApp(douyinAppID, "eve") // the login needs no key
	g.postJSON("/wx/phone", map[string]string{"code": "p-eve"}, bearer(s.AccessToken)...).Error(t, http.StatusBadGateway, "platform_unavailable")

	g.load(gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.wrongPublic)})
	g.postJSON("/wx/login", map[string]string{"code": "mallory", "appid": alipayAppID}).Error(t, http.StatusBadGateway, "platform_unavailable")
	if !strings.Contains(g.Logs(), "alipay_public_key") {
		t.Error("the log does not say the answer's signature failed")
	}

	g.load(gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.alipayPublic)})
	g.Platform.AddApp(douyinAppID, "another-secret")
	g.Platform.AddApp(baiduAppID, "another-secret")
	g.Platform.AddApp(alipayAppID, "")
	g.postJSON("/wx/login", map[string]string{"code": "trent", "appid": douyinAppID}).Error(t, http.StatusBadGateway, "platform_unavailable")
	g.postJSON("/wx/login", map[string]string{"code": "trent", "appid": baiduAppID}).Error(t, http.StatusBadGateway, "platform_unavailable")
	// The right keys still log in to Alipay, which has no secret.
	if s := g.loginApp(alipayAppID, "trent"); s.IDType != "open_id" {
		t.Errorf("alipay session %+v", s)
	}
}

// TestAlipayUserIDIsSaid: an app from before Alipay's openid gets user_id,
// and the session says so.
func TestAlipayUserIDIsSaid(t *testing.T) {
	k := writeKeyFiles(t)
	g := startGateway(t, gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.alipayPublic)})
	s := g.loginApp(alipayAppID, fakeplatform.AlipayCodeUserID)
	if s.OpenID != fakeplatform.AlipayUserID(fakeplatform.AlipayCodeUserID) || s.IDType != "user_id" {
		t.Errorf("session %+v", s)
	}
	raw := g.do(http.MethodGet, "/wx/me", nil, bearer(s.AccessToken)...)
	if !strings.Contains(string(raw.Body), `"id_type":"user_id"`) {
		t.Errorf("me does not say user_id: %s", raw.Body)
	}
	g.get("/orders", s.AccessToken)
	if got := g.Upstream.LastHeaders().Get("X-Wx-Openid"); got != s.OpenID {
		t.Errorf("X-WX-OPENID %q", got)
	}
	if both := g.loginApp(alipayAppID, fakeplatform.AlipayCodeBothIDs); both.IDType != "open_id" {
		t.Errorf("with both ids: %+v", both)
	}
	// Legacy encrypted data is WeChat's scheme: Alipay has none.
	g.postJSON("/wx/profile", map[string]string{"encrypted_data": "AAAA", "iv": "AAAA"}, bearer(s.AccessToken)...).
		Error(t, http.StatusBadRequest, "invalid_request")
}

// TestOtherPlatformsSandbox: with sandbox, the three platforms need no
// secret and no key, and work end to end in-process.
func TestOtherPlatformsSandbox(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: `
		app ` + douyinAppID + ` {
			platform douyin
		}
		app ` + alipayAppID + ` {
			platform alipay
		}
		app ` + baiduAppID + ` {
			platform baidu
		}
		sandbox
`})
	for appid, source := range map[string]string{douyinAppID: "douyin-miniprogram", alipayAppID: "alipay-miniprogram", baiduAppID: "baidu-miniprogram"} {
		s := g.loginApp(appid, "alice")
		if s.OpenID != fakeplatform.OpenID(appid, "alice") {
			t.Errorf("%s: openid %q", appid, s.OpenID)
		}
		if again := g.loginApp(appid, "alice"); again.OpenID != s.OpenID {
			t.Errorf("%s: alice is another user the second time", appid)
		}
		g.get("/orders", s.AccessToken)
		if got := g.Upstream.LastHeaders().Get("X-Wx-Source"); got != source {
			t.Errorf("%s: source %q", appid, got)
		}
		g.postJSON("/wx/profile", map[string]string{"nickname": "risky"}, bearer(s.AccessToken)...).Error(t, http.StatusUnprocessableEntity, "content_rejected")
		g.postJSON("/wx/login", map[string]string{"code": "invalid", "appid": appid}).Error(t, http.StatusBadRequest, "invalid_code")
		g.postJSON("/wx/login", map[string]string{"code": "busy", "appid": appid}).Error(t, http.StatusBadGateway, "platform_unavailable")
		g.postJSON("/wx/login", map[string]string{"code": "limited", "appid": appid}).Error(t, http.StatusTooManyRequests, "rate_limited")
		if appid == douyinAppID {
			p := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "phone-1"}, bearer(s.AccessToken)...))
			if p.Phone.PhoneNumber != fakeplatform.PhoneNumber {
				t.Errorf("sandbox Douyin phone %+v", *p.Phone)
			}
		}
	}
	logs := g.Logs()
	for _, note := range []string{"Alipay offers no image content check", "Baidu offers no image content check", "Baidu has no server API that trades a phone code"} {
		if !strings.Contains(logs, note) {
			t.Errorf("no startup note %q", note)
		}
	}
}

// TestOtherPlatformsKeyConfig: the keys' startup errors say what is wrong
// and never show the key.
func TestOtherPlatformsKeyConfig(t *testing.T) {
	k := writeKeyFiles(t)
	dir := t.TempDir()
	notAKey := filepath.Join(dir, "not-a-key.pem")
	const junk = "S3CRET-not-a-key-but-private-all-the-same"
	if err := os.WriteFile(notAKey, []byte(junk), 0o600); err != nil {
		t.Fatal(err)
	}
	keyText := string(fakeplatform.PrivateKeyPEM(fakeplatform.SandboxKeys().App))
	keyLine := strings.Split(keyText, "\n")[3]
	alipay := func(lines string) string {
		return "app " + alipayAppID + " {\nplatform alipay\n" + lines + "\n}"
	}
	for _, tc := range []struct{ name, block, want string }{
		{"alipay without keys", alipay(""), "needs private_key"},
		{"alipay without its public key", alipay("private_key {file." + k.appPrivate + "}"), "alipay_public_key"},
		{"alipay with a secret", alipay("secret s\nprivate_key {file." + k.appPrivate + "}\nalipay_public_key {file." + k.alipayPublic + "}"), "no secret"},
		{"unparsable key file", alipay("private_key {file." + notAKey + "}\nalipay_public_key {file." + k.alipayPublic + "}"), "private_key is not an RSA private key"},
		{"missing key file", alipay("private_key {file." + filepath.Join(dir, "nope.pem") + "}\nalipay_public_key {file." + k.alipayPublic + "}"), "resolved to nothing"},
		{"public key as private", alipay("private_key {file." + k.alipayPublic + "}\nalipay_public_key {file." + k.alipayPublic + "}"), "private_key is not"},
		{"private key as public", alipay("private_key {file." + k.appPrivate + "}\nalipay_public_key {file." + k.appPrivate + "}"), "alipay_public_key is not"},
		{"literal junk key", alipay("private_key " + junk + "\nalipay_public_key {file." + k.alipayPublic + "}"), "private_key is not"},
		{"private_key on wechat", "app wxbad000000001 {\nsecret s\nprivate_key {file." + k.appPrivate + "}\n}", "only to alipay and douyin"},
		{"alipay_public_key on douyin", "app " + douyinAppID + " {\nplatform douyin\nsecret s\nalipay_public_key {file." + k.alipayPublic + "}\n}", "only to alipay"},
		{"douyin without secret", "app " + douyinAppID + " {\nplatform douyin\n}", "has no secret"},
		{"baidu without secret", "app " + baiduAppID + " {\nplatform baidu\n}", "has no secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(t, site(t, tc.block))
			if err == nil {
				t.Fatal("bad config accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the problem (%q)", err, tc.want)
			}
			if strings.Contains(err.Error(), junk) || strings.Contains(err.Error(), keyLine) {
				t.Errorf("error shows a key: %v", err)
			}
		})
	}
	for name, block := range map[string]string{
		"alipay with keys":       alipay("private_key {file." + k.appPrivate + "}\nalipay_public_key {file." + k.alipayPublic + "}"),
		"douyin without a key":   "app " + douyinAppID + " {\nplatform douyin\nsecret s\n}",
		"douyin with a key":      "app " + douyinAppID + " {\nplatform douyin\nsecret s\nprivate_key {file." + k.appPrivate + "}\n}",
		"baidu":                  "app " + baiduAppID + " {\nplatform baidu\nsecret s\ncontent_check off\n}",
		"the three in a sandbox": "app " + douyinAppID + " {\nplatform douyin\n}\napp " + alipayAppID + " {\nplatform alipay\n}\napp " + baiduAppID + " {\nplatform baidu\n}\nsandbox",
	} {
		t.Run(name, func(t *testing.T) {
			if err := validate(t, site(t, block)); err != nil {
				t.Errorf("valid config refused: %v", err)
			}
		})
	}
}

// keyMaterial is the texts by which a private key would show: each line
// of its PEM's base64, and the bare base64 of its DER.
func keyMaterial(key *rsa.PrivateKey) []string {
	var parts []string
	for _, line := range strings.Split(string(fakeplatform.PrivateKeyPEM(key)), "\n") {
		if line != "" && !strings.HasPrefix(line, "-----") {
			parts = append(parts, line)
		}
	}
	return parts
}
