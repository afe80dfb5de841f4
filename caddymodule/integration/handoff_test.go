package integration

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// cookiesOf are the name=value pairs an answer sets.
func cookiesOf(r *response) map[string]string {
	out := map[string]string{}
	for _, c := range (&http.Response{Header: r.Header}).Cookies() {
		out[c.Name] = c.Value
	}
	return out
}

// TestWebViewHandoff: a mini-program user's login goes to a page in a
// <web-view> through a single-use ticket: the page's first load sets the
// web cookie session of the same user (openid, unionid, profile, source
// wechat-miniprogram) and lands on next; a used, unknown or foreign-next
// ticket gets nothing.
func TestWebViewHandoff(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	amy := g.login("handoff-amy")
	if r := g.postJSON("/wx/profile", map[string]string{"nickname": "Amy H5"}, bearer(amy.AccessToken)...); r.Status != http.StatusOK {
		t.Fatalf("profile: %d %s", r.Status, r.Body)
	}

	r := g.do(http.MethodPost, "/wx/handoff", nil, bearer(amy.AccessToken)...)
	if r.Status != http.StatusOK {
		t.Fatalf("POST /wx/handoff: %d %s", r.Status, r.Body)
	}
	var ticket struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.Unmarshal(r.Body, &ticket); err != nil || len(ticket.Ticket) != 43 || ticket.ExpiresIn < 58 || ticket.ExpiresIn > 60 {
		t.Fatalf("handoff answer %s (%v), want a 43-character ticket living 60 s", r.Body, err)
	}
	if strings.Contains(string(r.Body), amy.AccessToken) || strings.Contains(string(r.Body), amy.RefreshToken) {
		t.Fatal("the handoff answer carries a token")
	}

	redeem := "/wx/web/handoff?ticket=" + url.QueryEscape(ticket.Ticket) + "&next=" + url.QueryEscape("/orders?id=7")
	page := g.do(http.MethodGet, redeem, nil)
	if page.Status != http.StatusFound || page.Header.Get("Location") != "/orders?id=7" {
		t.Fatalf("redeem: %d to %q, want 302 to /orders?id=7: %s", page.Status, page.Header.Get("Location"), page.Body)
	}
	if page.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("the redirect from a URL with a ticket in it lets the browser send it on as a referrer")
	}
	cookies := cookiesOf(page)
	if cookies["wxauth_token"] == "" || cookies["wxauth_refresh"] == "" {
		t.Fatalf("redeem set cookies %v, want the access and refresh cookies", cookies)
	}
	web := g.get("/orders?id=7", "", "Cookie", "wxauth_token="+cookies["wxauth_token"])
	if web.Status != http.StatusOK {
		t.Fatalf("the page with the handed-off session: %d %s", web.Status, web.Body)
	}
	h := g.Upstream.LastHeaders()
	for name, want := range map[string]string{
		"X-Wx-Openid": amy.OpenID, "X-Wx-Unionid": amy.UnionID, "X-Wx-Appid": testAppID,
		"X-Wx-Source": "wechat-miniprogram", "X-Wx-Nickname": url.PathEscape("Amy H5"),
	} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream %s = %q, want %q", name, got, want)
		}
	}

	// Good once.
	again := g.do(http.MethodGet, redeem, nil)
	again.Error(t, http.StatusBadRequest, "invalid_code")
	if len(cookiesOf(again)) != 0 {
		t.Errorf("a used ticket set cookies: %v", cookiesOf(again))
	}
	g.do(http.MethodGet, "/wx/web/handoff?ticket=nope&next=/", nil).Error(t, http.StatusBadRequest, "invalid_code")
	g.do(http.MethodGet, "/wx/web/handoff?next=/", nil).Error(t, http.StatusBadRequest, "invalid_code")

	// next is checked like the web login's: another site is not a place to go.
	r = g.do(http.MethodPost, "/wx/handoff", nil, bearer(amy.AccessToken)...)
	_ = json.Unmarshal(r.Body, &ticket)
	evil := g.do(http.MethodGet, "/wx/web/handoff?ticket="+url.QueryEscape(ticket.Ticket)+"&next="+url.QueryEscape("https://evil.example/steal"), nil)
	if evil.Status != http.StatusFound || evil.Header.Get("Location") != "/" {
		t.Errorf("next to another site: %d to %q, want 302 to /", evil.Status, evil.Header.Get("Location"))
	}

	// Only the mini program's Bearer token asks for a ticket.
	g.do(http.MethodPost, "/wx/handoff", nil).Error(t, http.StatusUnauthorized, "login_required")
	g.do(http.MethodPost, "/wx/handoff", nil, "Cookie", "wxauth_token="+cookies["wxauth_token"],
		"Sec-Fetch-Site", "same-origin").Error(t, http.StatusBadRequest, "invalid_request")
	if logs := g.Logs(); strings.Contains(logs, ticket.Ticket) {
		t.Error("a handoff ticket is in the log")
	}
}

// verifyWithJWKS is the example of docs/tokens.md, as it is there: a
// service that verifies the gateway's access tokens with its published
// key.
func verifyWithJWKS(jwksURL, tokenString string) (jwt.MapClaims, error) {
	resp, err := http.Get(jwksURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set struct{ Keys []struct{ Kid, X string } }
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	_, err = jwt.ParseWithClaims(tokenString, claims, func(t *jwt.Token) (any, error) {
		for _, k := range set.Keys {
			if k.Kid == t.Header["kid"] {
				x, err := base64.RawURLEncoding.DecodeString(k.X)
				return ed25519.PublicKey(x), err
			}
		}
		return nil, errors.New("unknown kid: fetch the key set again")
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer("wxauth"), jwt.WithExpirationRequired())
	return claims, err
}

// TestJWKS: the Ed25519 public key is served as a JWK set with caching
// headers, and verifies the gateway's tokens with golang-jwt as the docs
// show; with signing_key nothing is published.
func TestJWKS(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	amy := g.login("jwks-amy")
	r := g.do(http.MethodGet, "/wx/.well-known/jwks.json", nil)
	if r.Status != http.StatusOK || r.Header.Get("Content-Type") != "application/jwk-set+json" {
		t.Fatalf("JWKS: %d %q: %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || r.Header.Get("ETag") == "" {
		t.Errorf("JWKS caching headers: Cache-Control %q, ETag %q", cc, r.Header.Get("ETag"))
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS body %s: %v", r.Body, err)
	}
	k := set.Keys[0]
	for field, want := range map[string]string{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA"} {
		if k[field] != want {
			t.Errorf("JWK %s = %q, want %q", field, k[field], want)
		}
	}
	if k["d"] != "" {
		t.Fatal("the JWK carries the private key")
	}
	if notModified := g.do(http.MethodGet, "/wx/.well-known/jwks.json", nil, "If-None-Match", r.Header.Get("ETag")); notModified.Status != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", notModified.Status)
	}

	claims, err := verifyWithJWKS(g.URL+"/wx/.well-known/jwks.json", amy.AccessToken)
	if err != nil {
		t.Fatalf("the documented verification: %v", err)
	}
	if claims["sub"] != amy.OpenID || claims["app"] != testAppID || claims["src"] != "wechat-miniprogram" || claims["sid"] == "" {
		t.Errorf("claims %v", claims)
	}

	hs := startGateway(t, gatewayConfig{Block: defaultBlock + hs256Line})
	none := hs.do(http.MethodGet, "/wx/.well-known/jwks.json", nil)
	none.Error(t, http.StatusNotFound, "invalid_request")
	if msg := none.JSON(t)["message"].(string); !strings.Contains(msg, "signing_key") {
		t.Errorf("the 404 does not say why: %q", msg)
	}
	if strings.Contains(string(none.Body), testSigningKey) {
		t.Fatal("the signing key was published")
	}
}

// A cookie session begun by a handoff renews like a web login's, on a
// gateway with no web app: a page load with the expired access cookie
// goes through /wx/web/login, whose refresh cookie brings it straight
// back with a new one.
func TestHandoffSessionRenewsWithoutAWebApp(t *testing.T) {
	g := startGateway(t, gatewayConfig{Block: defaultBlock + "\t\taccess_ttl 1s\n"})
	amy := g.login("handoff-renew")
	r := g.do(http.MethodPost, "/wx/handoff", nil, bearer(amy.AccessToken)...)
	var ticket struct{ Ticket string }
	if err := json.Unmarshal(r.Body, &ticket); err != nil {
		t.Fatal(err)
	}
	page := g.do(http.MethodGet, "/wx/web/handoff?next=/page&ticket="+url.QueryEscape(ticket.Ticket), nil)
	cookies := cookiesOf(page)
	time.Sleep(2100 * time.Millisecond) // the access token expires

	load := g.do(http.MethodGet, "/page", nil, "Accept", "text/html", "Cookie", "wxauth_token="+cookies["wxauth_token"])
	if load.Status != http.StatusFound || !strings.HasPrefix(load.Header.Get("Location"), "/wx/web/login?next=") {
		t.Fatalf("a page load with the expired cookie: %d to %q, want the trip through /wx/web/login", load.Status, load.Header.Get("Location"))
	}
	back := g.do(http.MethodGet, load.Header.Get("Location"), nil, "Cookie", "wxauth_refresh="+cookies["wxauth_refresh"])
	renewed := cookiesOf(back)
	if back.Status != http.StatusFound || back.Header.Get("Location") != "/page" || renewed["wxauth_token"] == "" {
		t.Fatalf("the refresh cookie's trip: %d to %q, cookies %v; want straight back with a new access cookie: %s",
			back.Status, back.Header.Get("Location"), renewed, back.Body)
	}
	if ok := g.get("/page", "", "Cookie", "wxauth_token="+renewed["wxauth_token"]); ok.Status != http.StatusOK {
		t.Errorf("the renewed cookie: %d", ok.Status)
	}
	// An API request with the expired cookie still gets its 401.
	if api := g.get("/api", "", "Cookie", "wxauth_token="+cookies["wxauth_token"]); api.Status != http.StatusUnauthorized {
		t.Errorf("an API request with the expired cookie: %d, want 401", api.Status)
	}
}
