package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// phoneAnswer is the answer of POST /wx/phone.
type phoneAnswer struct {
	Phone *struct {
		PhoneNumber     string `json:"phone_number"`
		PurePhoneNumber string `json:"pure_phone_number"`
		CountryCode     string `json:"country_code"`
	} `json:"phone"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func readPhoneAnswer(t *testing.T, r *response) phoneAnswer {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("phone: status %d: %s", r.Status, r.Body)
	}
	var a phoneAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil || a.Phone == nil || a.AccessToken == "" {
		t.Fatalf("phone answer incomplete (%v): %s", err, r.Body)
	}
	return a
}

// Two sites on one storage: the first does not forward the phone number,
// the second (forward_phone) does.
func TestPhoneNumberAndForwardPhone(t *testing.T) {
	port := e2etest.FreePort(t)
	g := startGateway(t, gatewayConfig{AfterSite: fmt.Sprintf(`
http://127.0.0.1:%d {
	wxauth {
		app %s {
			secret {env.%s}
		}
		api_base {api_base}
		platform_timeout 1s
		forward_phone
		rate_limit off
	}
	reverse_proxy {upstream}
}
`, port, testAppID, secretEnv)})
	forwarding := fmt.Sprintf("http://127.0.0.1:%d", port)

	s := g.login("pat")
	a := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "phone-1"}, bearer(s.AccessToken)...))
	if a.Phone.PhoneNumber != "13800138000" || a.Phone.PurePhoneNumber != "13800138000" || a.Phone.CountryCode != "86" {
		t.Errorf("phone = %+v", *a.Phone)
	}
	if m := g.me(a.AccessToken); !m.HasPhone {
		t.Error("me does not report the stored phone")
	}

	// The same code again (a retry or a double tap) is answered from what
	// was stored: the billed API is called once per code.
	again := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "phone-1"}, bearer(s.AccessToken)...))
	if *again.Phone != *a.Phone {
		t.Errorf("retry answered %+v, want %+v", *again.Phone, *a.Phone)
	}
	if n := g.Platform.PhoneCalls("phone-1"); n != 1 {
		t.Errorf("getuserphonenumber called %d times for one code, want 1", n)
	}

	// Not forwarded on the first site...
	g.get("/orders", a.AccessToken)
	if v := g.Upstream.LastHeaders().Values("X-Wx-Phone"); len(v) != 0 {
		t.Errorf("X-WX-PHONE sent without forward_phone: %q", v)
	}
	// ...forwarded on the second, and a forged one is replaced.
	req, _ := http.NewRequest(http.MethodGet, forwarding+"/orders", nil)
	req.Header.Set("Authorization", "Bearer "+a.AccessToken)
	req.Header.Set("X-WX-PHONE", "10000000000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("forwarding site: status %d", resp.StatusCode)
	}
	if v := g.Upstream.LastHeaders().Values("X-Wx-Phone"); len(v) != 1 || v[0] != "13800138000" {
		t.Errorf("X-WX-PHONE with forward_phone = %q, want [13800138000]", v)
	}

	// The second site calls the platform too, with the same access_token:
	// one token per app for the whole node, whatever the site.
	req, _ = http.NewRequest(http.MethodPost, forwarding+"/wx/phone", strings.NewReader(`{"code":"phone-2"}`))
	req.Header.Set("Authorization", "Bearer "+a.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("phone on the second site: status %d", resp.StatusCode)
	}
	if n := g.Platform.Calls("/cgi-bin/stable_token"); n != 1 {
		t.Errorf("stable_token fetched %d times by two sites, want 1", n)
	}

	// wxauth never logs the number. Caddy's reverse_proxy, at debug level,
	// logs the headers it sends upstream, X-WX-PHONE included where it is
	// forwarded: docs/miniprogram.md shows the log filter that removes it.
	assertPhoneNotLogged(t, g.Logs(), "13800138000")
}

func TestPhoneCountryCodeAsNumberAndInternational(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("quinn")
	a := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "numeric"}, bearer(s.AccessToken)...))
	if a.Phone.CountryCode != "86" {
		t.Errorf("numeric countryCode answered as %q, want \"86\"", a.Phone.CountryCode)
	}
	b := readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "intl"}, bearer(s.AccessToken)...))
	if b.Phone.CountryCode != "1" || b.Phone.PurePhoneNumber != "2025550123" {
		t.Errorf("international number = %+v", *b.Phone)
	}
	assertPhoneNotLogged(t, g.Logs(), "2025550123")
}

func TestPhoneRefusals(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("rita")
	auth := bearer(s.AccessToken)

	r := g.postJSON("/wx/phone", map[string]string{"code": "invalid"}, auth...)
	r.Error(t, http.StatusBadRequest, "invalid_code")
	if msg := r.JSON(t)["message"].(string); !strings.Contains(msg, "getPhoneNumber") || !strings.Contains(msg, "wx.login") {
		t.Errorf("40029 message %q should say the code comes from getPhoneNumber, not wx.login", msg)
	}

	// A code used by one user is no good to another.
	readPhoneAnswer(t, g.postJSON("/wx/phone", map[string]string{"code": "phone-r"}, auth...))
	other := g.login("sam")
	g.postJSON("/wx/phone", map[string]string{"code": "phone-r"}, bearer(other.AccessToken)...).Error(t, http.StatusBadRequest, "invalid_code")
	if m := g.me(other.AccessToken); m.HasPhone {
		t.Error("another user's code gave sam a phone number")
	}

	g.postJSON("/wx/phone", map[string]string{}, auth...).Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/phone", map[string]any{"code": 12}, auth...).Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/phone", map[string]string{"code": strings.Repeat("c", 300)}, auth...).Error(t, http.StatusBadRequest, "invalid_request")
	g.postJSON("/wx/phone", map[string]string{"code": "x"}).Error(t, http.StatusUnauthorized, "login_required")
	g.do(http.MethodPost, "/wx/phone", []byte(`code=x`), append([]string{"Content-Type", "application/x-www-form-urlencoded"}, auth...)...).Error(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	g.do(http.MethodGet, "/wx/phone", nil, auth...).Error(t, http.StatusMethodNotAllowed, "invalid_request")

	g.Platform.FailPath("/wxa/business/getuserphonenumber")
	g.postJSON("/wx/phone", map[string]string{"code": "phone-down"}, auth...).Error(t, http.StatusBadGateway, "platform_unavailable")
}

// Concurrent posts of one phone code call the billed API once.
func TestPhoneCodeConcurrentOnce(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("tom")
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := g.postJSON("/wx/phone", map[string]string{"code": "phone-c"}, bearer(s.AccessToken)...); r.Status != http.StatusOK {
				t.Errorf("phone: %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	if n := g.Platform.PhoneCalls("phone-c"); n != 1 {
		t.Errorf("getuserphonenumber called %d times for one code, want 1", n)
	}
}

// assertPhoneNotLogged fails on any log line with the number, except
// reverse_proxy's debug dump of the headers it sent upstream.
func assertPhoneNotLogged(t *testing.T, logs, number string) {
	t.Helper()
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, number) {
			continue
		}
		if strings.Contains(line, `"logger":"http.handlers.reverse_proxy"`) && strings.Contains(line, `"X-Wx-Phone":["`+number+`"]`) {
			continue
		}
		t.Errorf("the phone number appears in the log: %s", line)
	}
}
