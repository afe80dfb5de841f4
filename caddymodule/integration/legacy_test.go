package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/userdata"
)

// encryptedUserInfo is what wx.getUserInfo hands a client: the profile
// encrypted under the user's session key, and rawData with its signature.
func encryptedUserInfo(t *testing.T, sessionKey, appid, openid, nickname string) map[string]string {
	t.Helper()
	info := map[string]any{
		"openId":    openid,
		"nickName":  nickname,
		"gender":    1,
		"avatarUrl": "https://thirdwx.qlogo.cn/mmopen/vi_32/legacy/132",
		"watermark": map[string]any{"appid": appid, "timestamp": 1700000000},
	}
	plain, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	data, iv, err := userdata.Encrypt(sessionKey, plain)
	if err != nil {
		t.Fatal(err)
	}
	raw := `{"nickName":"` + nickname + `","gender":1}`
	return map[string]string{
		"encrypted_data": data,
		"iv":             iv,
		"raw_data":       raw,
		"signature":      userdata.Sign(raw, sessionKey),
	}
}

func withField(m map[string]string, k, v string) map[string]string {
	c := make(map[string]string, len(m)+1)
	for key, val := range m {
		c[key] = val
	}
	if v == "" {
		delete(c, k)
	} else {
		c[k] = v
	}
	return c
}

// The legacy way: encrypted getUserInfo data, decrypted with the session
// key the server kept from the login.
func TestProfileFromEncryptedData(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("ivan")
	key := g.Platform.LastSessionKey(testAppID, s.OpenID)
	if key == "" {
		t.Fatal("the fake platform has no session key for the user")
	}
	auth := bearer(s.AccessToken)
	good := encryptedUserInfo(t, key, testAppID, s.OpenID, "老用户")

	bad := []struct {
		name string
		body map[string]string
		code string
	}{
		{"wrong watermark appid", encryptedUserInfo(t, key, "wxsomeoneelse0001", s.OpenID, "x"), "decrypt_failed"},
		{"another user's openid", encryptedUserInfo(t, key, testAppID, "o-someone-else", "x"), "decrypt_failed"},
		{"stale session key", encryptedUserInfo(t, "AAAAAAAAAAAAAAAAAAAAAA==", testAppID, s.OpenID, "x"), "decrypt_failed"},
		{"bad signature", withField(good, "signature", strings.Repeat("0", 40)), "decrypt_failed"},
		{"bad base64", withField(good, "encrypted_data", "%%%not base64%%%"), "decrypt_failed"},
		{"short iv", withField(good, "iv", "AAAAAAAAAAAAAAAAAAAA"), "decrypt_failed"},
		{"partial block", withField(good, "encrypted_data", good["encrypted_data"][:len(good["encrypted_data"])-8]), "decrypt_failed"},
		{"missing iv", withField(good, "iv", ""), "invalid_request"},
		{"signature without raw_data", withField(good, "raw_data", ""), "invalid_request"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			g.postJSON("/wx/profile", c.body, auth...).Error(t, http.StatusBadRequest, c.code)
		})
	}
	if m := g.me(s.AccessToken); m.HasProfile {
		t.Fatalf("a refused update stored a profile: %+v", m.Profile)
	}

	a := readProfileAnswer(t, g.postJSON("/wx/profile", good, auth...))
	if a.Profile.Nickname != "老用户" || a.Profile.AvatarURL != "https://thirdwx.qlogo.cn/mmopen/vi_32/legacy/132" {
		t.Errorf("profile = %+v", a.Profile)
	}
	if nick, _ := g.upstreamIdentity(a.AccessToken); nick != "老用户" {
		t.Errorf("upstream nickname = %q", nick)
	}

	// Data encrypted under a key that is no longer the user's: the answer
	// tells the client to log in again.
	r := g.postJSON("/wx/profile", encryptedUserInfo(t, "BBBBBBBBBBBBBBBBBBBBBB==", testAppID, s.OpenID, "x"), auth...)
	r.Error(t, http.StatusBadRequest, "decrypt_failed")
	if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "wx.login") {
		t.Errorf("decrypt_failed message %q does not tell the client to log in again", msg)
	}
}

// The old two-in-one login: the code and the encrypted user data in one
// post set the profile at login. In sandbox mode the session key is known
// ahead, as it would be to the mini program.
func TestLoginWithEncryptedData(t *testing.T) {
	const appid = "wxsandboxapp0001"
	g := startGateway(t, gatewayConfig{Block: "\t\tapp " + appid + "\n\t\tsandbox\n"})
	code := "legacy-user"
	openid := fakeplatform.OpenID(appid, code)
	key := fakeplatform.SessionKey(appid, code)

	body := encryptedUserInfo(t, key, appid, openid, "旧版😀")
	body["code"] = code
	s := g.postJSON("/wx/login", body).Session(t, "legacy login")
	if !s.HasProfile || s.Profile == nil || s.Profile.Nickname != "旧版😀" {
		t.Fatalf("legacy login answer = %+v, want the profile set", s)
	}
	if nick, _ := g.upstreamIdentity(s.AccessToken); nick != "旧版😀" {
		t.Errorf("upstream nickname = %q", nick)
	}

	// Data that does not decrypt fails the login and starts no session;
	// a malformed request fails before the code is spent.
	other := "legacy-other"
	bad := encryptedUserInfo(t, key, appid, fakeplatform.OpenID(appid, other), "x") // encrypted under another user's key
	bad["code"] = other
	g.postJSON("/wx/login", bad).Error(t, http.StatusBadRequest, "decrypt_failed")
	g.postJSON("/wx/login", map[string]string{"code": "legacy-third", "encrypted_data": "abc"}).Error(t, http.StatusBadRequest, "invalid_request")

	// The same code without the data still logs in (the exchange is kept).
	plain := g.postJSON("/wx/login", map[string]string{"code": other}).Session(t, "login after a failed decrypt")
	if plain.HasProfile {
		t.Errorf("a failed decrypt stored a profile: %+v", plain.Profile)
	}
}
