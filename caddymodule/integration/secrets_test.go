package integration

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

// TestNoSecretInLogsOrAnswers drives every endpoint and failure at debug
// level, then looks for every secret in the log and in every answer.
func TestNoSecretInLogsOrAnswers(t *testing.T) {
	// The mini program also logs websites in by scanning its code.
	withScan := strings.Replace(webApps, "secret {env."+secretEnv+"}\n", "secret {env."+secretEnv+"}\n\t\t\tscan_login\n", 1)
	if withScan == webApps {
		t.Fatal("no scan_login in the test's config")
	}
	g := startGateway(t, gatewayConfig{Block: withScan + hs256Line})

	var answers []string
	keep := func(r *response) { answers = append(answers, string(r.Body)+headerText(r.Header)) }

	s := g.login("kim")
	keep(g.get("/orders", s.AccessToken))
	keep(g.get("/orders", s.AccessToken+"x"))
	keep(g.get("/orders", ""))
	for _, code := range []string{"invalid", "used", "blocked", "busy", "limited", "garbage", "http500", "slow", "badkey", "badopenid"} {
		keep(g.postJSON("/wx/login", map[string]string{"code": code}))
	}
	keep(g.do("POST", "/wx/login", []byte("{"), "Content-Type", "application/json"))

	// The profile and phone endpoints, which use the session_key and the
	// app's access_token, on their good and bad paths.
	auth := bearer(s.AccessToken)
	key := g.Platform.LastSessionKey(testAppID, s.OpenID)
	enc := encryptedUserInfo(t, key, testAppID, s.OpenID, "kim")
	keep(g.postJSON("/wx/profile", enc, auth...))
	keep(g.postJSON("/wx/profile", encryptedUserInfo(t, key, "wxotherapp000001", s.OpenID, "kim"), auth...))
	keep(g.postJSON("/wx/profile", withField(enc, "signature", strings.Repeat("0", 40)), auth...))
	keep(g.postJSON("/wx/profile", withField(enc, "iv", "AAAA"), auth...))
	keep(g.postJSON("/wx/profile", map[string]string{"nickname": "risky kim"}, auth...))
	keep(g.postMultipart("/wx/profile", map[string]string{"nickname": "kim"}, "avatar", "a.png", testPNG(t), auth...))
	keep(g.do(http.MethodGet, "/wx/me", nil, auth...))
	keep(g.postJSON("/wx/phone", map[string]string{"code": "phone-kim"}, auth...))
	keep(g.postJSON("/wx/phone", map[string]string{"code": "invalid"}, auth...))
	g.Platform.FailPath("/wxa/msg_sec_check")
	keep(g.postJSON("/wx/profile", map[string]string{"nickname": "kim again"}, auth...))
	platformTokens := g.Platform.Tokens()
	if len(platformTokens) == 0 {
		t.Fatal("no access_token was fetched; the test proves nothing")
	}

	// Refresh, avatars, logout and the endpoints that do not exist.
	// (Answers that issue tokens are not kept: they carry their own.)
	r2 := g.refresh(s.RefreshToken).Session(t, "refresh")
	g.refresh(s.RefreshToken).Session(t, "refresh retried within the grace") // answers r2's tokens again
	keep(g.refresh("garbage.garbage"))
	for _, u := range g.storedAvatars() {
		keep(g.do(http.MethodGet, "/wx/avatar/"+u, nil))
	}
	keep(g.do(http.MethodGet, "/wx/avatar/0000", nil))
	keep(g.do(http.MethodGet, "/wx/nothing", nil))
	s3 := g.login("kim3")
	keep(g.do(http.MethodPost, "/wx/logout", nil, bearer(s3.AccessToken)...))
	keep(g.do(http.MethodPost, "/wx/logout", nil, bearer(s3.AccessToken)...))

	// The web-view handoff (its answer is a ticket, not kept: the redirect
	// after it carries the new session's cookies) and the key set (none,
	// with signing_key).
	keep(g.do(http.MethodPost, "/wx/handoff", nil, bearer(s3.AccessToken)...)) // logged out
	handoff := g.do(http.MethodPost, "/wx/handoff", nil, auth...)
	var ticket struct{ Ticket string }
	_ = json.Unmarshal(handoff.Body, &ticket)
	g.do(http.MethodGet, "/wx/web/handoff?next=/&ticket="+url.QueryEscape(ticket.Ticket), nil)
	keep(g.do(http.MethodGet, "/wx/web/handoff?next=/&ticket="+url.QueryEscape(ticket.Ticket), nil)) // used
	keep(g.do(http.MethodGet, "/wx/.well-known/jwks.json", nil))

	// The web login, its cookie at the gate, a forged state and a logout.
	flow := g.webLogin("/wx/web/login?appid=" + webAppID + "&next=/orders")
	cookie := flow.sessionCookie(t)
	keep(g.do(http.MethodGet, "/orders", nil, "Cookie", cookie.Name+"="+cookie.Value))
	keep(g.do(http.MethodGet, flow.callback, nil, "Cookie", flow.state.Name+"="+flow.state.Value)) // state spent
	keep(g.do(http.MethodGet, "/wx/web/callback?code=x&state=forged", nil, "Cookie", "wxauth_state=forged"))
	keep(g.do(http.MethodGet, "/orders", nil, "Accept", "text/html"))
	keep(g.do(http.MethodPost, "/wx/logout", nil, "Cookie", cookie.Name+"="+cookie.Value))
	webCookies := []string{cookie.Value, flow.state.Value}
	if c := cookies(flow.final)["wxauth_refresh"]; c != nil {
		webCookies = append(webCookies, c.Value)
	}
	webTokens := g.Platform.WebTokens()
	if len(webTokens) == 0 {
		t.Fatal("the web login fetched no platform token; the test proves nothing")
	}

	// Scan login: a ticket and its code (made with the app's
	// access_token), the mini program's steps, the browser's wait and its
	// session, and the refusals.
	sb := g.scanStart(nil, nil)
	keep(g.do(http.MethodGet, sb.qrURL, nil))
	keep(g.scanStep("scanned", sb.ticket, r2.AccessToken))
	keep(g.scanStep("confirm", sb.ticket, r2.AccessToken+"x"))
	keep(g.scanStep("confirm", sb.ticket, r2.AccessToken))
	scanned := sb.wait("scanned") // issues the session's cookies: not kept
	keep(sb.wait(""))
	keep(g.do(http.MethodGet, "/wx/scan/wait?ticket="+sb.ticket, nil, "Cookie", "wxauth_scan=forged"))
	keep(g.do(http.MethodGet, "/wx/scan/NoSuchTicketNoSuchTicketNoSuch00.png", nil))
	scanCookies := []string{sb.cookie.Value}
	for _, name := range []string{"wxauth_token", "wxauth_refresh"} {
		c := cookies(scanned)[name]
		if c == nil {
			t.Fatalf("the scan login set no %s: %d %s", name, scanned.Status, scanned.Body)
		}
		scanCookies = append(scanCookies, c.Value)
	}
	keep(g.do(http.MethodGet, "/orders", nil, "Cookie", "wxauth_token="+scanCookies[1]))

	g.Platform.AddApp(testAppID, "another-secret") // now the secret is wrong
	keep(g.postJSON("/wx/login", map[string]string{"code": "lee"}))

	// The platform did receive the secret: so the test would see it if it leaked.
	sawSecret := false
	for _, s := range g.Platform.SecretsSeen() {
		sawSecret = sawSecret || s == testSecret
	}
	if !sawSecret {
		t.Fatal("the fake platform never saw the secret; the test proves nothing")
	}

	sessionKeys := storedSessionKeys(t, g.DataDir)
	if len(sessionKeys) == 0 {
		t.Fatal("no session_key stored; the test proves nothing")
	}
	secrets := map[string]string{
		"appsecret":     testSecret,
		"signing key":   testSigningKey,
		"access token":  s.AccessToken,
		"refresh token": s.RefreshToken,
		// The signature alone identifies a token just as well.
		"token signature": s.AccessToken[strings.LastIndex(s.AccessToken, ".")+1:],
	}
	for i, k := range sessionKeys {
		secrets["session_key "+string(rune('a'+i))] = k
	}
	for i, tok := range platformTokens {
		secrets["platform access_token "+string(rune('a'+i))] = tok
	}
	for i, tok := range webTokens {
		secrets["web platform token "+string(rune('a'+i))] = tok
	}
	for i, c := range webCookies {
		secrets["web cookie (token, state) "+string(rune('a'+i))] = c
	}
	for i, c := range scanCookies {
		secrets["scan cookie (browser key, token, refresh) "+string(rune('a'+i))] = c
	}
	for what, tok := range map[string]string{"refreshed access token": r2.AccessToken, "refreshed refresh token": r2.RefreshToken,
		"logged-out access token": s3.AccessToken, "logged-out refresh token": s3.RefreshToken} {
		secrets[what] = tok
	}

	logs := g.Logs()
	if !strings.Contains(logs, `"level":"debug"`) && !strings.Contains(logs, `"level":"info"`) {
		t.Fatalf("the log captured nothing useful:\n%s", logs)
	}
	for _, msg := range []string{`"msg":"login"`, `"msg":"profile updated"`, `"msg":"phone number stored"`,
		`"msg":"refresh"`, `"msg":"logout"`, `"source":"wechat-web"`, `"msg":"scan"`, `"flow":"scan"`} {
		if !strings.Contains(logs, msg) {
			t.Errorf("no %s line in the log", msg)
		}
	}
	assertPhoneNotLogged(t, logs, "13800138000")
	// A ticket is in its code and its answers, never in a log line.
	if strings.Contains(logs, sb.ticket) {
		t.Error("the scan ticket is in the log")
	}
	assertSecretsNowhere(t, secrets, logs, answers, nil)
	// The login answer carries its own tokens and nothing else secret.
	login := g.postJSON("/wx/login", map[string]string{"code": "kim2"})
	for _, k := range storedSessionKeys(t, g.DataDir) {
		if strings.Contains(string(login.Body), k) {
			t.Error("a session_key is in the login answer")
		}
	}
	if strings.Contains(string(login.Body), "session_key") {
		t.Error("the login answer names a session_key")
	}
	if login.Status != http.StatusOK {
		// kim2 fails because the secret is wrong now; that is fine too, as
		// long as it is JSON.
		login.JSON(t)
	}
}

// assertSecretsNowhere fails for every secret (by what it is) found in the
// log, in an answer, or in what the upstream received.
func assertSecretsNowhere(t *testing.T, secrets map[string]string, logs string, answers, upstream []string) {
	t.Helper()
	for what, secret := range secrets {
		if strings.Contains(logs, secret) {
			t.Errorf("the %s is in the log", what)
		}
		for _, a := range answers {
			if strings.Contains(a, secret) {
				t.Errorf("the %s is in an answer: %s", what, a)
			}
		}
		for _, h := range upstream {
			if strings.Contains(h, secret) {
				t.Errorf("the %s reached the upstream: %s", what, h)
			}
		}
	}
}

func headerText(h http.Header) string {
	var b strings.Builder
	for k, v := range h {
		b.WriteString(k + ": " + strings.Join(v, ",") + "\n")
	}
	return b.String()
}

// storedSessionKeys reads every session_key the gateway stored.
func storedSessionKeys(t *testing.T, dataDir string) []string {
	t.Helper()
	var keys []string
	root := filepath.Join(dataDir, "wxauth", "users")
	_ = filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var u struct {
			SessionKey string `json:"session_key"`
		}
		if json.Unmarshal(b, &u) == nil && u.SessionKey != "" {
			keys = append(keys, u.SessionKey)
		}
		return nil
	})
	return keys
}

// TestLiteralSecretsStayOutOfOurLogs: with the secret written straight into
// the Caddyfile, Caddy's own config dump shows it (hence the docs' advice
// to use {env.*} or {file.*}), but no line of wxauth's own may.
func TestLiteralSecretsStayOutOfOurLogs(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: `
		app ` + testAppID + ` {
			secret ` + testSecret + `
		}
		api_base {api_base}
		platform_timeout 1s
		signing_key ` + testSigningKey + `
`})
	s := g.login("literal")
	g.get("/", s.AccessToken)
	for _, code := range []string{"invalid", "busy", "garbage", "slow"} {
		g.postJSON("/wx/login", map[string]string{"code": code})
	}
	g.Platform.AddApp(testAppID, "another-secret")
	g.postJSON("/wx/login", map[string]string{"code": "literal-2"})

	ours := 0
	for _, line := range strings.Split(g.Logs(), "\n") {
		if !strings.Contains(line, `"logger":"http.handlers.wxauth"`) {
			continue
		}
		ours++
		for _, secret := range []string{testSecret, testSigningKey, s.AccessToken, s.RefreshToken} {
			if strings.Contains(line, secret) {
				t.Errorf("wxauth logged a secret: %s", line)
			}
		}
	}
	if ours < 3 {
		t.Fatalf("only %d wxauth log lines; the test proves nothing", ours)
	}
}

// adminConfig is what Caddy's admin API serves as the running config: what
// anyone who can reach the admin endpoint reads, what `caddy reload` and
// caddytest's failure dump print, and what Caddy writes to autosave.json.
func adminConfig(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(adminURL + "/config/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /config/: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// TestAdminConfigHoldsPlaceholdersNotSecrets: Caddy keeps the config as it
// was given and serves it on the admin API's /config/. A secret written as
// {env.*} or {file.*} is read only when the handler is provisioned, so the
// config holds the placeholder; the logins prove the handler got the real
// values (the fake platform checks each app's secret, and the gate accepts
// a token signed with the key from the file). The same secrets written
// literally are in /config/ for anyone to read: the reason the docs
// tells operators to use placeholders.
func TestAdminConfigHoldsPlaceholdersNotSecrets(t *testing.T) {
	const (
		fileAppID      = "wxtestfileapp001"
		fileSecret     = "S3CRET-from-a-file-never-shown-0002"
		fileSigningKey = "S3CRET-signing-key-from-a-file-0123456789"
	)
	dir := t.TempDir()
	secretPath := filepath.Join(dir, "appsecret")
	keyPath := filepath.Join(dir, "signing-key")
	// Files as operators write them, with a final newline ({file.*} drops it).
	if err := os.WriteFile(secretPath, []byte(fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(fileSigningKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, gatewayConfig{Block: `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
		}
		app ` + fileAppID + ` {
			secret {file.` + secretPath + `}
		}
		signing_key {file.` + keyPath + `}
		api_base {api_base}
		platform_timeout 1s
`})
	// From now on the fake platform refuses any other secret.
	g.Platform.AddApp(testAppID, testSecret)
	g.Platform.AddApp(fileAppID, fileSecret)
	var s session
	for _, appid := range []string{testAppID, fileAppID} {
		s = g.postJSON("/wx/login", map[string]string{"code": "placeholder", "appid": appid}).Session(t, "login to "+appid)
		if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("%s: token refused: %d %s", appid, r.Status, r.Body)
		}
	}
	// The token's own header, so the kid is the one the gateway uses.
	head, _, _ := strings.Cut(s.AccessToken, ".")
	claims, _ := json.Marshal(map[string]any{
		"iss": "wxauth", "sub": "o123", "sid": "s123", "app": testAppID, "src": "wechat-miniprogram",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	unsigned := head + "." + b64(claims)
	mac := hmac.New(sha256.New, []byte(fileSigningKey))
	mac.Write([]byte(unsigned))
	forged := unsigned + "." + b64(mac.Sum(nil))
	if r := g.get("/", forged); r.Status != http.StatusOK {
		t.Fatalf("a token signed with the key from the file was refused (%d): the handler does not use it", r.Status)
	}

	config := adminConfig(t)
	for _, placeholder := range []string{"{env." + secretEnv + "}", "{file." + secretPath + "}", "{file." + keyPath + "}"} {
		if !strings.Contains(config, placeholder) {
			t.Errorf("/config/ lacks the placeholder %s:\n%s", placeholder, config)
		}
	}
	for what, secret := range map[string]string{"env secret": testSecret, "file secret": fileSecret, "file signing key": fileSigningKey} {
		if strings.Contains(config, secret) {
			t.Errorf("the %s is in /config/", what)
		}
		if strings.Contains(g.Logs(), secret) {
			t.Errorf("the %s is in the log", what)
		}
	}

	// Written literally, the secrets are part of the config Caddy serves.
	g.load(gatewayConfig{Block: `
		app ` + testAppID + ` {
			secret ` + testSecret + `
		}
		signing_key ` + testSigningKey + `
		api_base {api_base}
		platform_timeout 1s
`})
	g.login("literal")
	config = adminConfig(t)
	if !strings.Contains(config, testSecret) || !strings.Contains(config, testSigningKey) {
		t.Errorf("literal secrets are not in /config/; then what does this test show?\n%s", config)
	}
}

// TestNoPlatformKeyInLogsOrAnswers is TestNoSecretInLogsOrAnswers for
// Douyin, Alipay and Baidu: their logins, failures, profiles, phone numbers
// and wrong keys at debug level, then every secret (the private key, the
// secrets, session_keys, the platforms' tokens, Alipay's user tokens, the
// phone number) looked for in the log, every answer, everything the
// upstream received and, for what must never be kept, the storage.
func TestNoPlatformKeyInLogsOrAnswers(t *testing.T) {
	k := writeKeyFiles(t)
	g := startGateway(t, gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.alipayPublic) + hs256Line})

	var answers []string
	keep := func(r *response) { answers = append(answers, string(r.Body)+headerText(r.Header)) }
	var sessions []session
	for _, appid := range []string{douyinAppID, alipayAppID, baiduAppID} {
		s := g.loginApp(appid, "kim")
		sessions = append(sessions, s)
		auth := bearer(s.AccessToken)
		keep(g.get("/orders", s.AccessToken))
		for _, code := range []string{"invalid", "busy", "limited", "garbage", "http500", "slow", "badopenid", "badkey"} {
			keep(g.postJSON("/wx/login", map[string]string{"code": code, "appid": appid}))
		}
		keep(g.postJSON("/wx/profile", map[string]string{"nickname": "risky kim"}, auth...))
		keep(g.postMultipart("/wx/profile", map[string]string{"nickname": "kim"}, "avatar", "a.png", testPNG(t), auth...))
		keep(g.postJSON("/wx/profile", map[string]string{"encrypted_data": "AAAA", "iv": "AAAA"}, auth...))
		keep(g.do(http.MethodGet, "/wx/me", nil, auth...))
		keep(g.postJSON("/wx/phone", map[string]string{"code": "phone-kim"}, auth...))
		keep(g.postJSON("/wx/phone", map[string]string{"code": "invalid"}, auth...))
		g.refresh(s.RefreshToken).Session(t, "refresh "+appid)
	}
	// The Douyin session_key decrypts legacy data as WeChat's does.
	key := g.Platform.LastSessionKey(douyinAppID, sessions[0].OpenID)
	keep(g.postJSON("/wx/profile", encryptedUserInfo(t, key, douyinAppID, sessions[0].OpenID, "kim"), bearer(sessions[0].AccessToken)...))

	// Wrong keys: a refused signature, an answer that does not verify, a
	// phone number that does not decrypt; then a wrong secret.
	g.load(gatewayConfig{Block: otherPlatforms(k.wrongPrivate, k.wrongPrivate, k.alipayPublic) + hs256Line})
	keep(g.postJSON("/wx/login", map[string]string{"code": "lee", "appid": alipayAppID}))
	keep(g.postJSON("/wx/phone", map[string]string{"code": "phone-lee"}, bearer(g.loginApp(douyinAppID, "lee").AccessToken)...))
	g.load(gatewayConfig{Block: otherPlatforms(k.appPrivate, k.appPrivate, k.wrongPublic) + hs256Line})
	keep(g.postJSON("/wx/login", map[string]string{"code": "lee2", "appid": alipayAppID}))
	g.Platform.AddApp(douyinAppID, "another-secret")
	g.Platform.AddApp(baiduAppID, "another-secret")
	keep(g.postJSON("/wx/login", map[string]string{"code": "lee3", "appid": douyinAppID}))
	keep(g.postJSON("/wx/login", map[string]string{"code": "lee3", "appid": baiduAppID}))

	platformTokens := g.Platform.Tokens()
	sessionKeys := storedSessionKeys(t, g.DataDir)
	sawSecret := false
	for _, s := range g.Platform.SecretsSeen() {
		sawSecret = sawSecret || s == testSecret
	}
	if len(platformTokens) < 3 || len(sessionKeys) < 2 || !sawSecret {
		t.Fatalf("%d platform tokens, %d session keys, secret seen %v: the test proves nothing", len(platformTokens), len(sessionKeys), sawSecret)
	}
	secrets := map[string]string{"appsecret": testSecret, "signing key": testSigningKey,
		// The fake's Alipay user tokens all start so: wxauth never keeps
		// or shows them.
		"alipay user token": "authusrB"}
	for i, part := range append(keyMaterial(fakeplatform.SandboxKeys().App), keyMaterial(wrongKey())...) {
		secrets["private key line "+string(rune('a'+i%26))+string(rune('a'+i/26))] = part
	}
	for i, key := range sessionKeys {
		secrets["session_key "+string(rune('a'+i))] = key
	}
	for i, tok := range platformTokens {
		secrets["platform token "+string(rune('a'+i))] = tok
	}
	for i, s := range sessions {
		secrets["access token "+string(rune('a'+i))] = s.AccessToken
		secrets["refresh token "+string(rune('a'+i))] = s.RefreshToken
	}

	logs := g.Logs()
	for _, want := range []string{`"source":"douyin-miniprogram"`, `"source":"alipay-miniprogram"`, `"source":"baidu-miniprogram"`, "isv.invalid-signature"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no %s in the log: the test did not drive what it meant to", want)
		}
	}
	assertPhoneNotLogged(t, logs, fakeplatform.PhoneNumber)
	var upstream []string
	for _, seen := range g.Upstream.Requests() {
		upstream = append(upstream, headerText(seen.Header))
	}
	assertSecretsNowhere(t, secrets, logs, answers, upstream)
	// Alipay's user tokens and the keys are never stored.
	filepath.Walk(g.DataDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, secret := range append([]string{"authusrB", testSecret}, keyMaterial(fakeplatform.SandboxKeys().App)...) {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds a secret", path)
			}
		}
		return nil
	})
	config := adminConfig(t)
	for _, part := range keyMaterial(fakeplatform.SandboxKeys().App) {
		if strings.Contains(config, part) {
			t.Fatal("the private key is in /config/; it was given as {file.*}")
		}
	}
}
