package integration

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// forgedHeaderNames are spellings of identity headers a client may try to
// slip past the gate.
var forgedHeaderNames = []string{
	"X-WX-OPENID", "x-wx-openid", "X-Wx-Openid", "X_WX_OPENID", "X-Wx_OpenId",
	"x_wx_unionid", "X-WX-APPID", "X-WX-NICKNAME", "X-WX-PHONE", "X-WX-SOURCE",
	"X-WX-ANYTHING-ELSE", "x-WX_avatar",
}

// sendRaw writes a request byte by byte, because Go's client would
// canonicalise the header names the test is about.
func sendRaw(t *testing.T, g *gateway, path string, headerLines []string) (int, string) {
	t.Helper()
	conn := g.rawConn()
	defer conn.Close()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + strings.TrimPrefix(g.URL, "http://") + "\r\nConnection: close\r\n"
	for _, l := range headerLines {
		req += l + "\r\n"
	}
	req += "\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&b)
	return resp.StatusCode, b.String()
}

// rawConn is a TCP connection to the gateway, for requests written byte
// by byte; it gives up after 5s so that a hung server fails the test.
func (g *gateway) rawConn() net.Conn {
	g.t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
	if err != nil {
		g.t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn
}

// assertNoForgery fails if the upstream saw any header value the test forged.
func assertNoForgery(t *testing.T, h http.Header) {
	t.Helper()
	for name, vals := range h {
		for _, v := range vals {
			if strings.Contains(v, "forged") {
				t.Errorf("forged header reached the upstream: %s: %s", name, v)
			}
		}
	}
}

func TestForgedHeadersAreStripped(t *testing.T) {
	for _, mode := range []string{"authenticated", "anonymous"} {
		t.Run(mode, func(t *testing.T) {
			block := defaultBlock
			if mode == "anonymous" {
				block += "\t\toptional\n"
			}
			g := startGateway(t, gatewayConfig{Block: block})
			var auth []string
			var s session
			if mode == "authenticated" {
				s = g.login("dave")
				auth = []string{"Authorization: Bearer " + s.AccessToken}
			}
			for _, name := range forgedHeaderNames {
				status, body := sendRaw(t, g, "/profile", append([]string{name + ": forged-" + name}, auth...))
				if status != http.StatusOK {
					t.Fatalf("%s: status %d %s", name, status, body)
				}
				h := g.Upstream.LastHeaders()
				assertNoForgery(t, h)
				if mode == "authenticated" && h.Get("X-Wx-Openid") != s.OpenID {
					t.Errorf("%s: verified openid missing: %v", name, h)
				}
				if mode == "anonymous" && len(identityHeaders(h)) != 0 {
					t.Errorf("%s: anonymous request carries identity headers %v", name, identityHeaders(h))
				}
			}
			// Several at once, and duplicates of the real name.
			lines := append([]string{"X-WX-OPENID: forged-1", "X-WX-OPENID: forged-2", "x_wx_openid: forged-3", "X-Wx-Unionid: forged-4"}, auth...)
			if status, body := sendRaw(t, g, "/profile", lines); status != http.StatusOK {
				t.Fatalf("status %d %s", status, body)
			}
			h := g.Upstream.LastHeaders()
			assertNoForgery(t, h)
			if mode == "authenticated" {
				if got := h.Values("X-Wx-Openid"); len(got) != 1 || got[0] != s.OpenID {
					t.Errorf("X-WX-OPENID = %q, want exactly the verified one", got)
				}
			}
		})
	}
}

// Caddy drops every request header with an underscore before any handler
// runs, unless the operator allowlists it (expected_underscore_headers), so
// the underscore spellings in TestForgedHeadersAreStripped never reach
// wxauth. Here they do, and wxauth's own rule ("_" counted as "-") must
// strip them: CGI, PHP and nginx with underscores_in_headers read
// X_WX_OPENID as X-WX-OPENID.
func TestForgedUnderscoreHeadersStrippedWhenCaddyKeepsThem(t *testing.T) {
	g := startGateway(t, gatewayConfig{Global: "\tservers {\n\t\texpected_underscore_headers x_wx_* x-wx_* x_probe\n\t}"})
	s := g.login("underscore")
	for _, mode := range []string{"authenticated", "anonymous"} {
		lines := []string{"X_WX_OPENID: forged-1", "x_wx_unionid: forged-2", "X-Wx_Phone: forged-3", "x_wx_nickname: forged-4", "X_PROBE: kept"}
		want := http.StatusOK
		if mode == "authenticated" {
			lines = append(lines, "Authorization: Bearer "+s.AccessToken)
		} else {
			want = http.StatusUnauthorized
		}
		before := g.Upstream.Hits()
		if status, body := sendRaw(t, g, "/underscore", lines); status != want {
			t.Fatalf("%s: status %d %s", mode, status, body)
		}
		if mode == "anonymous" {
			if g.Upstream.Hits() != before {
				t.Error("an anonymous request reached the upstream")
			}
			continue
		}
		h := g.Upstream.LastHeaders()
		// The control: this config does let underscore headers through
		// Caddy, so what is missing below was removed by wxauth.
		if h.Get("X_probe") != "kept" {
			t.Fatalf("Caddy dropped the allowlisted X_PROBE header; the test proves nothing: %v", h)
		}
		assertNoForgery(t, h)
		if got := h.Values("X-Wx-Openid"); len(got) != 1 || got[0] != s.OpenID {
			t.Errorf("X-WX-OPENID = %q, want exactly the verified one", got)
		}
	}
}

// A proxy deletes the headers that Connection names (hop-by-hop) after the
// gate has added the verified ones. Naming an identity header there must
// not make it vanish: the upstream would see an authenticated request
// without its identity, or with only part of it (an openid without its
// appid).
func TestConnectionHeaderCannotDropVerifiedIdentity(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("hop")
	auth := "Authorization: Bearer " + s.AccessToken
	if status, body := sendRaw(t, g, "/baseline", []string{auth}); status != http.StatusOK {
		t.Fatalf("status %d %s", status, body)
	}
	verified := identityValues(g.Upstream.LastHeaders())

	// The control: Caddy does honour Connection, so the test can fail.
	if status, body := sendRaw(t, g, "/control", []string{auth, "X-Probe: dropped", "Connection: X-Probe"}); status != http.StatusOK {
		t.Fatalf("status %d %s", status, body)
	}
	if g.Upstream.LastHeaders().Get("X-Probe") != "" {
		t.Fatal("Caddy forwarded a header named in Connection; the test proves nothing")
	}

	for _, conn := range []string{
		"X-WX-OPENID",
		"X-Wx-Appid, X-WX-UNIONID",
		"keep-alive, x-wx-source, X-Probe",
	} {
		if status, body := sendRaw(t, g, "/hop", []string{auth, "X-Probe: dropped", "Connection: " + conn}); status != http.StatusOK {
			t.Fatalf("Connection %q: status %d %s", conn, status, body)
		}
		h := g.Upstream.LastHeaders()
		if got := identityValues(h); !reflect.DeepEqual(got, verified) {
			t.Errorf("Connection %q: upstream identity %v, want %v", conn, got, verified)
		}
		if strings.Contains(conn, "X-Probe") && h.Get("X-Probe") != "" {
			t.Errorf("Connection %q: the other options were not kept", conn)
		}
	}
}

// identityValues is the identity-family headers of h.
func identityValues(h http.Header) http.Header {
	out := http.Header{}
	for name, vals := range h {
		if identity.IsIdentityHeader(name) {
			out[name] = vals
		}
	}
	return out
}

func identityHeaders(h http.Header) []string {
	var out []string
	for name := range h {
		n := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
		if strings.HasPrefix(n, "x-wx-") {
			out = append(out, name)
		}
	}
	return out
}

func TestForgedHeadersOnRefusedRequests(t *testing.T) {
	// Refused requests never reach the upstream at all.
	g := startGateway(t, gatewayConfig{})
	status, _ := sendRaw(t, g, "/x", []string{"X-WX-OPENID: forged"})
	if status != http.StatusUnauthorized || g.Upstream.Hits() != 0 {
		t.Errorf("status %d, upstream hits %d", status, g.Upstream.Hits())
	}
}

func TestOptionalModeLetsAnonymousThrough(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\toptional\n"})
	if r := g.get("/public", ""); r.Status != http.StatusOK {
		t.Fatalf("anonymous request refused in optional mode: %d", r.Status)
	}
	// With a token the identity still arrives.
	s := g.login("erin")
	if r := g.get("/public", s.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if g.Upstream.LastHeaders().Get("X-Wx-Openid") != s.OpenID {
		t.Error("identity missing in optional mode")
	}
	// A bad token is refused, so the client knows to log in again.
	g.get("/public", "garbage").Error(t, http.StatusUnauthorized, "token_invalid")
}

func TestPlaceholders(t *testing.T) {
	g := startGateway(t, gatewayConfig{Extra: `
	request_header X-Seen-Id {http.auth.user.id}
	request_header X-Seen-App {http.auth.user.appid}
	request_header X-Seen-Union {http.auth.user.unionid}
	request_header X-Seen-Nick {http.auth.user.nickname}
`})
	s := g.login("frank")
	if r := g.get("/", s.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	h := g.Upstream.LastHeaders()
	if h.Get("X-Seen-Id") != s.OpenID || h.Get("X-Seen-App") != testAppID || h.Get("X-Seen-Union") != s.UnionID {
		t.Errorf("placeholders: id=%q app=%q union=%q", h.Get("X-Seen-Id"), h.Get("X-Seen-App"), h.Get("X-Seen-Union"))
	}
	a := readProfileAnswer(t, g.postJSON("/wx/profile", map[string]string{"nickname": "Frank Ünï"}, bearer(s.AccessToken)...))
	if r := g.get("/", a.AccessToken); r.Status != http.StatusOK {
		t.Fatal(r.Status)
	}
	if got := g.Upstream.LastHeaders().Get("X-Seen-Nick"); got != "Frank Ünï" {
		t.Errorf("{http.auth.user.nickname} = %q", got)
	}
}

func TestTokenExpiry(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\taccess_ttl 1m\n"})
	s := g.login("gina")
	if s.ExpiresIn > 60 {
		t.Fatalf("expires_in %d with access_ttl 1m", s.ExpiresIn)
	}
	// A token whose exp is in the past, signed with the right key: built
	// with the HS256 test key in another gateway.
	h := startGateway(t, gatewayConfig{Block: defaultBlock + hs256Line})
	expired := hs256Claims(t, testSigningKey, map[string]any{
		"iss": "wxauth", "sub": "o123", "sid": "s123", "app": testAppID, "src": "wechat-miniprogram",
		"iat": time.Now().Add(-3 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
	}, kidOf(t, h))
	h.get("/", expired).Error(t, http.StatusUnauthorized, "token_expired")
	// The same claims, fresh, pass: the refusal above was about time only.
	fresh := hs256Claims(t, testSigningKey, map[string]any{
		"iss": "wxauth", "sub": "o123", "sid": "s123", "app": testAppID, "src": "wechat-miniprogram",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}, kidOf(t, h))
	if r := h.get("/", fresh); r.Status != http.StatusOK {
		t.Errorf("a well-formed HS256 token was refused: %d %s", r.Status, r.Body)
	}
	// A token for an app this gateway does not serve is refused.
	other := hs256Claims(t, testSigningKey, map[string]any{
		"iss": "wxauth", "sub": "o123", "sid": "s123", "app": "wxremovedapp", "src": "wechat-miniprogram",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}, kidOf(t, h))
	h.get("/", other).Error(t, http.StatusUnauthorized, "token_invalid")
}

func TestTokensOfOneKeyAreRefusedByAnother(t *testing.T) {
	// Ed25519 (storage) gateway issues; an HS256 gateway must refuse it, and
	// vice versa.
	a := startGateway(t, gatewayConfig{})
	edToken := a.login("hank").AccessToken
	b := startGateway(t, gatewayConfig{Block: defaultBlock + hs256Line})
	hsToken := b.login("hank").AccessToken
	b.get("/", edToken).Error(t, http.StatusUnauthorized, "token_invalid")
	if r := b.get("/", hsToken); r.Status != http.StatusOK {
		t.Fatalf("HS256 gateway refused its own token: %d", r.Status)
	}
}

// --- token forging helpers ---

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func tamper(t *testing.T, payload string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "oSomeoneElse"
	out, _ := json.Marshal(claims)
	return b64(out)
}

func noneToken(t *testing.T, payload string) string {
	return b64([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + payload + "."
}

func hs256Token(t *testing.T, payload, key string) string {
	head := b64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(head + "." + payload))
	return head + "." + payload + "." + b64(mac.Sum(nil))
}

func hs256Claims(t *testing.T, key string, claims map[string]any, kid string) string {
	t.Helper()
	head := b64([]byte(fmt.Sprintf(`{"alg":"HS256","typ":"JWT","kid":%q}`, kid)))
	body, _ := json.Marshal(claims)
	payload := b64(body)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(head + "." + payload))
	return head + "." + payload + "." + b64(mac.Sum(nil))
}

// kidOf reads the key id a gateway puts in its tokens.
func kidOf(t *testing.T, g *gateway) string {
	t.Helper()
	tok := g.login(fmt.Sprintf("kid-probe-%d", time.Now().UnixNano())).AccessToken
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		t.Fatal(err)
	}
	if head.Kid == "" {
		t.Fatal("tokens carry no kid")
	}
	return head.Kid
}
