package integration

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// profileAnswer is the answer of POST /wx/profile.
type profileAnswer struct {
	Profile     *e2etest.Profile `json:"profile"`
	AccessToken string           `json:"access_token"`
	ExpiresIn   int64            `json:"expires_in"`
}

func readProfileAnswer(t *testing.T, r *response) profileAnswer {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("profile: status %d: %s", r.Status, r.Body)
	}
	var a profileAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil || a.Profile == nil || a.AccessToken == "" || a.ExpiresIn <= 0 {
		t.Fatalf("profile answer incomplete (%v): %s", err, r.Body)
	}
	return a
}

// meAnswer is the answer of GET /wx/me.
type meAnswer struct {
	OpenID     string           `json:"openid"`
	UnionID    string           `json:"unionid"`
	AppID      string           `json:"appid"`
	HasProfile bool             `json:"has_profile"`
	Profile    *e2etest.Profile `json:"profile"`
	HasPhone   bool             `json:"has_phone"`
}

func (g *gateway) me(accessToken string) meAnswer {
	g.t.Helper()
	r := g.do(http.MethodGet, "/wx/me", nil, bearer(accessToken)...)
	if r.Status != http.StatusOK {
		g.t.Fatalf("me: status %d: %s", r.Status, r.Body)
	}
	var m meAnswer
	if err := json.Unmarshal(r.Body, &m); err != nil {
		g.t.Fatalf("me: %v: %s", err, r.Body)
	}
	if !strings.Contains(string(r.Body), `"profile":`) || !strings.Contains(string(r.Body), `"has_profile":`) {
		g.t.Fatalf("me answer lacks profile fields: %s", r.Body)
	}
	return m
}

// upstreamIdentity calls the upstream with accessToken and returns the
// decoded nickname and the avatar it received.
func (g *gateway) upstreamIdentity(accessToken string) (nickname, avatarURL string) {
	g.t.Helper()
	if r := g.get("/whoami", accessToken); r.Status != http.StatusOK {
		g.t.Fatalf("gate refused the token: %d %s", r.Status, r.Body)
	}
	h := g.Upstream.LastHeaders()
	nickname, err := identity.DecodeNickname(h.Get("X-Wx-Nickname"))
	if err != nil {
		g.t.Fatalf("X-WX-NICKNAME %q does not decode: %v", h.Get("X-Wx-Nickname"), err)
	}
	return nickname, h.Get("X-Wx-Avatar")
}

// testPNG is a real 3x2 PNG image.
func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.RGBA{R: 200, G: 30, B: 90, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// storedAvatars lists the avatar files in the gateway's storage.
func (g *gateway) storedAvatars() []string {
	g.t.Helper()
	entries, err := os.ReadDir(filepath.Join(g.DataDir, "wxauth", "avatars"))
	if err != nil && !os.IsNotExist(err) {
		g.t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

const emojiNickname = "小明 😀 Ünïcødé"

func TestMeSaysWhetherTheUserHasAProfile(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("alice")
	m := g.me(s.AccessToken)
	if m.OpenID != s.OpenID || m.AppID != testAppID || m.UnionID != s.UnionID {
		t.Errorf("me = %+v, want the session's user %s", m, s.OpenID)
	}
	if m.HasProfile || m.Profile != nil || m.HasPhone {
		t.Errorf("a fresh user has no profile or phone: %+v", m)
	}

	g.do(http.MethodGet, "/wx/me", nil).Error(t, http.StatusUnauthorized, "login_required")
	g.do(http.MethodGet, "/wx/me", nil, bearer("not-a-token")...).Error(t, http.StatusUnauthorized, "token_invalid")
	r := g.do(http.MethodPost, "/wx/me", nil, bearer(s.AccessToken)...)
	r.Error(t, http.StatusMethodNotAllowed, "invalid_request")
	if r.Header.Get("Allow") != http.MethodGet {
		t.Errorf("Allow = %q", r.Header.Get("Allow"))
	}
}

// The getUserProfile way: plain JSON. The nickname is checked with the
// platform, the answer's token shows it upstream at once, /wx/me and later
// logins report it, and other sessions pick it up at their next refresh.
func TestProfileJSON(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("carol")
	other := g.login("carol") // the same code again: another session, same user
	if other.OpenID != s.OpenID {
		t.Fatalf("second session is another user: %s vs %s", other.OpenID, s.OpenID)
	}

	const avatarURL = "https://thirdwx.qlogo.cn/mmopen/vi_32/abc/132"
	a := readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": emojiNickname, "avatar_url": avatarURL}, bearer(s.AccessToken)...))
	if a.Profile.Nickname != emojiNickname || a.Profile.AvatarURL != avatarURL {
		t.Fatalf("profile = %+v", a.Profile)
	}
	if a.ExpiresIn > s.ExpiresIn {
		t.Errorf("the new token lives %ds, longer than the one it replaces (%ds)", a.ExpiresIn, s.ExpiresIn)
	}

	checks := g.Platform.TextChecks()
	if len(checks) != 1 {
		t.Fatalf("text checks = %+v, want one", checks)
	}
	if c := checks[0]; c.OpenID != s.OpenID || c.Scene != 1 || c.Version != 2 || c.Content != emojiNickname {
		t.Errorf("msg_sec_check got %+v, want version 2, scene 1, the user's openid and the nickname", c)
	}

	nick, ava := g.upstreamIdentity(a.AccessToken)
	if nick != emojiNickname || ava != avatarURL {
		t.Errorf("upstream got nickname %q avatar %q", nick, ava)
	}
	if m := g.me(s.AccessToken); !m.HasProfile || m.Profile == nil || m.Profile.Nickname != emojiNickname {
		t.Errorf("me after the update = %+v", m)
	}
	// The old token still works, and still carries the old (empty) profile.
	if nick, _ := g.upstreamIdentity(s.AccessToken); nick != "" {
		t.Errorf("the old token now says nickname %q", nick)
	}

	// The other session learns the profile when it refreshes.
	refreshed := g.postJSON("/wx/refresh", map[string]string{"refresh_token": other.RefreshToken}).Session(t, "refresh")
	if !refreshed.HasProfile || refreshed.Profile == nil || refreshed.Profile.Nickname != emojiNickname {
		t.Errorf("refresh answer = %+v, want the new profile", refreshed)
	}
	if nick, _ := g.upstreamIdentity(refreshed.AccessToken); nick != emojiNickname {
		t.Errorf("refreshed token carries nickname %q", nick)
	}

	// Change only the nickname: the avatar stays. The unchanged nickname
	// is not checked again; the new one is.
	b := readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "新名字"}, bearer(a.AccessToken)...))
	if b.Profile.Nickname != "新名字" || b.Profile.AvatarURL != avatarURL {
		t.Errorf("partial update = %+v, want the new nickname and the old avatar", b.Profile)
	}
	readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "新名字"}, bearer(b.AccessToken)...))
	if n := len(g.Platform.TextChecks()); n != 2 {
		t.Errorf("text checks = %d, want 2 (the unchanged nickname is not checked again)", n)
	}
}

// The chooseAvatar way: a multipart upload. The image is checked, stored,
// and served byte for byte with long-lived caching.
func TestProfileAvatarUpload(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("dave")
	img := testPNG(t)

	r := g.postMultipart("/wx/profile", map[string]string{"nickname": emojiNickname}, "avatar", "tmp_123.jpg", img, bearer(s.AccessToken)...)
	a := readProfileAnswer(t, r)
	if a.Profile.Nickname != emojiNickname {
		t.Errorf("nickname = %q", a.Profile.Nickname)
	}
	prefix := g.URL + "/wx/avatar/"
	if !strings.HasPrefix(a.Profile.AvatarURL, prefix) {
		t.Fatalf("avatar_url = %q, want it under %s", a.Profile.AvatarURL, prefix)
	}
	if checks := g.Platform.ImageChecks(); len(checks) != 1 || !bytes.Equal(checks[0], img) {
		t.Errorf("the image check got %d images; want exactly the uploaded one", len(checks))
	}

	path := strings.TrimPrefix(a.Profile.AvatarURL, g.URL)
	got := g.do(http.MethodGet, path, nil)
	if got.Status != http.StatusOK || !bytes.Equal(got.Body, img) {
		t.Fatalf("GET %s: status %d, %d bytes; want the %d bytes uploaded", path, got.Status, len(got.Body), len(img))
	}
	for name, want := range map[string]string{
		"Content-Type":           "image/png", // by the bytes, though the file was named .jpg
		"Cache-Control":          "public, max-age=31536000, immutable",
		"X-Content-Type-Options": "nosniff",
	} {
		if v := got.Header.Get(name); v != want {
			t.Errorf("%s = %q, want %q", name, v, want)
		}
	}
	etag := got.Header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := g.do(http.MethodGet, path, nil, "If-None-Match", etag); r.Status != http.StatusNotModified {
		t.Errorf("conditional GET: status %d, want 304", r.Status)
	}
	if r := g.do(http.MethodHead, path, nil); r.Status != http.StatusOK || len(r.Body) != 0 {
		t.Errorf("HEAD: status %d with %d bytes", r.Status, len(r.Body))
	}
	g.do(http.MethodGet, "/wx/avatar/"+strings.Repeat("0", 64), nil).Error(t, http.StatusNotFound, "invalid_request")
	g.do(http.MethodGet, "/wx/avatar/..%2f..%2fusers", nil).Error(t, http.StatusNotFound, "invalid_request")
	g.do(http.MethodDelete, path, nil).Error(t, http.StatusMethodNotAllowed, "invalid_request")

	nick, ava := g.upstreamIdentity(a.AccessToken)
	if nick != emojiNickname || ava != a.Profile.AvatarURL {
		t.Errorf("upstream got %q / %q", nick, ava)
	}

	// Only the avatar, from a client that sends no nickname field.
	other := testPNG(t)
	other = append(other[:len(other):len(other)], 0) // different bytes, same kind of image
	b := readProfileAnswer(t, g.postMultipart("/wx/profile", nil, "avatar", "a.png", other, bearer(a.AccessToken)...))
	if b.Profile.Nickname != emojiNickname || b.Profile.AvatarURL == a.Profile.AvatarURL {
		t.Errorf("avatar-only update = %+v", b.Profile)
	}
	if n := len(g.storedAvatars()); n != 2 {
		t.Errorf("%d avatars stored, want 2", n)
	}
}

// With avatar_base, avatar URLs start there (Caddy behind a TLS proxy).
func TestAvatarBase(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\tavatar_base https://api.example.com/wx/avatar\n"})
	s := g.login("erin")
	a := readProfileAnswer(t, g.postMultipart("/wx/profile", nil, "avatar", "a.png", testPNG(t), bearer(s.AccessToken)...))
	if want := "https://api.example.com/wx/avatar/"; !strings.HasPrefix(a.Profile.AvatarURL, want) {
		t.Errorf("avatar_url = %q, want it under %s", a.Profile.AvatarURL, want)
	}
}

// Refused uploads store nothing: not the image, not the nickname.
func TestProfileRefusals(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("frank")
	auth := bearer(s.AccessToken)
	img := testPNG(t)

	cases := []struct {
		name   string
		send   func() *response
		status int
		code   string
	}{
		{"not an image", func() *response {
			return g.postMultipart("/wx/profile", map[string]string{"nickname": "ok"}, "avatar", "a.png", []byte("<html><script>alert(1)</script></html>"), auth...)
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"gif", func() *response {
			return g.postMultipart("/wx/profile", nil, "avatar", "a.gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), auth...)
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"empty file", func() *response {
			return g.postMultipart("/wx/profile", nil, "avatar", "a.png", []byte{}, auth...)
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"too large", func() *response {
			big := append(append([]byte(nil), img...), make([]byte, 1<<20)...)
			return g.postMultipart("/wx/profile", nil, "avatar", "a.png", big, auth...)
		}, http.StatusRequestEntityTooLarge, "body_too_large"},
		{"risky nickname", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": "a risky name"}, auth...)
		}, http.StatusUnprocessableEntity, "content_rejected"},
		{"risky nickname with an avatar", func() *response {
			return g.postMultipart("/wx/profile", map[string]string{"nickname": "so risky"}, "avatar", "a.png", img, auth...)
		}, http.StatusUnprocessableEntity, "content_rejected"},
		{"risky image", func() *response {
			risky := append(append([]byte(nil), img...), []byte("risky")...)
			return g.postMultipart("/wx/profile", map[string]string{"nickname": "fine"}, "avatar", "a.png", risky, auth...)
		}, http.StatusUnprocessableEntity, "content_rejected"},
		{"no fields", func() *response {
			return g.postJSON("/wx/profile", map[string]string{}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"empty nickname", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": "  "}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"long nickname", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": strings.Repeat("长", 65)}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"control characters", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": "a\r\nX-WX-OPENID: b"}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"javascript avatar", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"avatar_url": "javascript:alert(1)"}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"relative avatar", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"avatar_url": "/a.png"}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"nickname of the wrong type", func() *response {
			return g.do(http.MethodPost, "/wx/profile", []byte(`{"nickname": 7}`), append([]string{"Content-Type", "application/json"}, auth...)...)
		}, http.StatusBadRequest, "invalid_request"},
		{"malformed JSON", func() *response {
			return g.do(http.MethodPost, "/wx/profile", []byte(`{"nickname":`), append([]string{"Content-Type", "application/json"}, auth...)...)
		}, http.StatusBadRequest, "invalid_request"},
		{"text/plain", func() *response {
			return g.do(http.MethodPost, "/wx/profile", []byte(`{"nickname":"x"}`), append([]string{"Content-Type", "text/plain"}, auth...)...)
		}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"multipart without boundary", func() *response {
			return g.do(http.MethodPost, "/wx/profile", []byte(`x`), append([]string{"Content-Type", "multipart/form-data"}, auth...)...)
		}, http.StatusBadRequest, "invalid_request"},
		{"broken multipart", func() *response {
			return g.do(http.MethodPost, "/wx/profile", []byte("--b\r\nContent-Disposition: form-data; name=\"avatar\"\r\n\r\nabc"), append([]string{"Content-Type", "multipart/form-data; boundary=b"}, auth...)...)
		}, http.StatusBadRequest, "invalid_request"},
		{"both ways at once", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": "x", "encrypted_data": "abc", "iv": "abc"}, auth...)
		}, http.StatusBadRequest, "invalid_request"},
		{"no token", func() *response {
			return g.postJSON("/wx/profile", map[string]string{"nickname": "x"})
		}, http.StatusUnauthorized, "login_required"},
		{"GET", func() *response {
			return g.do(http.MethodGet, "/wx/profile", nil, auth...)
		}, http.StatusMethodNotAllowed, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.send().Error(t, c.status, c.code)
		})
	}
	if m := g.me(s.AccessToken); m.HasProfile || m.Profile != nil {
		t.Errorf("a refused update stored a profile: %+v", m.Profile)
	}
	if stored := g.storedAvatars(); len(stored) != 0 {
		t.Errorf("refused avatars were stored: %v", stored)
	}
	if g.Upstream.Hits() != 0 {
		t.Errorf("profile requests reached the upstream")
	}
}

// A content check that cannot be made fails the update; unchecked content
// is never stored.
func TestProfileCheckFailureIsBadGateway(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("gina")
	auth := bearer(s.AccessToken)

	g.Platform.FailPath("/wxa/msg_sec_check")
	g.postJSON("/wx/profile", map[string]string{"nickname": "gina"}, auth...).Error(t, http.StatusBadGateway, "platform_unavailable")

	g.Platform.FailPath("/wxa/img_sec_check")
	g.postMultipart("/wx/profile", nil, "avatar", "a.png", testPNG(t), auth...).Error(t, http.StatusBadGateway, "platform_unavailable")

	if m := g.me(s.AccessToken); m.HasProfile {
		t.Errorf("unchecked content was stored: %+v", m.Profile)
	}
	if stored := g.storedAvatars(); len(stored) != 0 {
		t.Errorf("an unchecked avatar was stored: %v", stored)
	}
}

// `content_check off` skips the platform for that app only.
func TestContentCheckOff(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: `
		app ` + testAppID + ` {
			secret {env.` + secretEnv + `}
			content_check off
		}
		api_base {api_base}
`})
	s := g.login("hank")
	a := readProfileAnswer(t, g.postMultipart("/wx/profile", map[string]string{"nickname": "risky but allowed"}, "avatar", "a.png", testPNG(t), bearer(s.AccessToken)...))
	if a.Profile.Nickname != "risky but allowed" {
		t.Errorf("profile = %+v", a.Profile)
	}
	if n, m := len(g.Platform.TextChecks()), len(g.Platform.ImageChecks()); n+m != 0 {
		t.Errorf("with content_check off the platform saw %d text and %d image checks", n, m)
	}
	if n := g.Platform.Calls("/cgi-bin/stable_token"); n != 0 {
		t.Errorf("with content_check off an access_token was fetched %d times", n)
	}
}

// Many concurrent checks share one access_token, fetched once from
// stable_token (never the classic /cgi-bin/token); an expired token is
// replaced once and the check goes on.
func TestOneStableTokenForManyCalls(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	const n = 12
	sessions := make([]session, n)
	for i := range sessions {
		sessions[i] = g.login("user" + string(rune('a'+i)))
	}
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := g.postJSON("/wx/profile", map[string]string{"nickname": "name " + string(rune('a'+i))}, bearer(s.AccessToken)...)
			if r.Status != http.StatusOK {
				t.Errorf("profile %d: %d %s", i, r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if got := g.Platform.Calls("/cgi-bin/stable_token"); got != 1 {
		t.Errorf("stable_token fetched %d times for %d checks, want 1", got, n)
	}
	if got := len(g.Platform.TextChecks()); got != n {
		t.Errorf("%d text checks, want %d", got, n)
	}

	g.Platform.ExpireTokens()
	readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "after expiry"}, bearer(sessions[0].AccessToken)...))
	if got := g.Platform.Calls("/cgi-bin/stable_token"); got != 2 {
		t.Errorf("stable_token fetched %d times after the token expired, want 2", got)
	}
	if got := g.Platform.Calls("/cgi-bin/token"); got != 0 {
		t.Errorf("the classic /cgi-bin/token was called %d times", got)
	}

	// A config reload keeps the node's tokens.
	g.load(gatewayConfig{Block: defaultBlock + "\t\tforward_phone\n"})
	readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "after reload"}, bearer(sessions[1].AccessToken)...))
	if got := g.Platform.Calls("/cgi-bin/stable_token"); got != 2 {
		t.Errorf("stable_token fetched %d times after a reload, want still 2", got)
	}
}
