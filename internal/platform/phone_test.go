package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

const phonePath = "/wxa/business/getuserphonenumber"

func TestPhoneNumber(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	tests := []struct {
		code string
		want Phone
	}{
		{"alice-phone", Phone{fakeplatform.PhoneNumber, fakeplatform.PhoneNumber, "86"}},
		{fakeplatform.PhoneCodeNumeric, Phone{fakeplatform.PhoneNumber, fakeplatform.PhoneNumber, "86"}},
		{fakeplatform.PhoneCodeIntl, Phone{fakeplatform.IntlPhoneNumber, fakeplatform.IntlPurePhoneNumber, fakeplatform.IntlCountryCode}},
	}
	for _, tt := range tests {
		phone, err := s.PhoneNumber(context.Background(), app, tt.code)
		if err != nil || *phone != tt.want {
			t.Errorf("%s: got %v %v, want %v", tt.code, phone, err, tt.want)
		}
		if got := srv.PhoneCalls(tt.code); got != 1 {
			t.Errorf("%s: %d calls, want 1", tt.code, got)
		}
	}
}

func TestPhoneNumberCodeErrors(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	ctx := context.Background()
	leaks := func() []string { return srv.Tokens() }

	// A code is single-use.
	if _, err := s.PhoneNumber(ctx, app, "bob-phone"); err != nil {
		t.Fatal(err)
	}
	_, err := s.PhoneNumber(ctx, app, "bob-phone")
	wantPhoneCodeError(t, err, 40029, leaks()...)

	_, err = s.PhoneNumber(ctx, app, fakeplatform.CodeInvalid)
	wantPhoneCodeError(t, err, 40029, leaks()...)

	// -1 is not retried: the call is billed.
	_, err = s.PhoneNumber(ctx, app, fakeplatform.CodeBusy)
	e := wantError(t, err, "getuserphonenumber", Unavailable, -1, leaks()...)
	if !strings.Contains(e.Message, "getPhoneNumber") {
		t.Errorf("Message %q does not ask for a new code", e.Message)
	}
	if got := srv.PhoneCalls(fakeplatform.CodeBusy); got != 1 {
		t.Errorf("busy code sent %d times, want exactly 1", got)
	}

	// Codes refused locally.
	for _, code := range []string{"", strings.Repeat("c", 257)} {
		_, err := s.PhoneNumber(ctx, app, code)
		e := wantError(t, err, "getuserphonenumber", InvalidCode, 0)
		for _, want := range []string{"getPhoneNumber", "wx.login"} {
			if !strings.Contains(e.Message, want) {
				t.Errorf("Message %q does not mention %s", e.Message, want)
			}
		}
	}
	if got := srv.PhoneCalls("") + srv.PhoneCalls(strings.Repeat("c", 257)); got != 0 {
		t.Errorf("%d calls for codes refused locally", got)
	}
}

func wantPhoneCodeError(t *testing.T, err error, errcode int, leaks ...string) {
	t.Helper()
	e := wantError(t, err, "getuserphonenumber", InvalidCode, errcode, leaks...)
	for _, want := range []string{"invalid", "expired", "used", "getPhoneNumber", "bindgetphonenumber", "e.detail.code", "not the wx.login code"} {
		if !strings.Contains(e.Message, want) {
			t.Errorf("Message %q does not mention %q", e.Message, want)
		}
	}
}

func TestPhoneNumberResentAfterTokenRefusal(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	s := newService(nil)
	app := testApp(srv.URL)
	if _, err := s.AccessToken(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	srv.ExpireTokens()
	phone, err := s.PhoneNumber(context.Background(), app, "carol-phone")
	if err != nil || phone.PurePhoneNumber != fakeplatform.PhoneNumber {
		t.Fatalf("got %v %v", phone, err)
	}
	// The platform refused the first send for its token, so it did not take
	// (or bill) it; the second send is the one that counts.
	if got := srv.PhoneCalls("carol-phone"); got != 2 {
		t.Errorf("%d calls, want 2", got)
	}
}

func TestPhoneNumberQQUnsupported(t *testing.T) {
	srv := fakeplatform.NewServer(t)
	app := App{AppID: "1110000000", Secret: testSecret, Kind: QQ, APIBase: srv.URL}
	_, err := newService(nil).PhoneNumber(context.Background(), app, "dave-phone")
	e := wantError(t, err, "getuserphonenumber", Unsupported, 0)
	if e.Code != "invalid_request" || !strings.Contains(e.Message, "QQ mini programs have no phone-number API") {
		t.Errorf("got %s %q", e.Code, e.Message)
	}
	for _, path := range []string{"/api/getToken", stableTokenPath, phonePath} {
		if srv.Calls(path) != 0 {
			t.Errorf("%s was called", path)
		}
	}
}

func TestPhoneNumberAnswers(t *testing.T) {
	const good = `"phoneNumber":"13800138000","purePhoneNumber":"13800138000"`
	tests := []struct {
		name string
		info string // the phone_info object; "" for none
		want *Phone // nil: Unavailable
	}{
		{"string country code", `{` + good + `,"countryCode":"86"}`, &Phone{"13800138000", "13800138000", "86"}},
		{"numeric country code", `{` + good + `,"countryCode":86}`, &Phone{"13800138000", "13800138000", "86"}},
		{"plus country code", `{` + good + `,"countryCode":"+86"}`, &Phone{"13800138000", "13800138000", "86"}},
		{"no country code", `{` + good + `}`, &Phone{"13800138000", "13800138000", ""}},
		{"watermark ignored", `{` + good + `,"countryCode":"86","watermark":{"appid":"wx1","timestamp":1}}`, &Phone{"13800138000", "13800138000", "86"}},
		{"no phoneNumber", `{"purePhoneNumber":"13800138000","countryCode":"86"}`, &Phone{"13800138000", "13800138000", "86"}},
		{"country code letters", `{` + good + `,"countryCode":"CN"}`, nil},
		{"country code float", `{` + good + `,"countryCode":86.5}`, nil},
		{"country code object", `{` + good + `,"countryCode":{}}`, nil},
		{"no pure number", `{"phoneNumber":"13800138000","countryCode":"86"}`, nil},
		{"pure number with letters", `{"phoneNumber":"1","purePhoneNumber":"1380013800x","countryCode":"86"}`, nil},
		{"pure number too long", `{"purePhoneNumber":"` + strings.Repeat("1", 21) + `"}`, nil},
		{"phoneNumber with markup", `{"phoneNumber":"<b>1</b>","purePhoneNumber":"13800138000"}`, nil},
		{"pure number as a number", `{"purePhoneNumber":13800138000}`, nil},
		{"no phone_info", ``, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"errcode":0,"errmsg":"ok"}`
			if tt.info != "" {
				body = `{"errcode":0,"errmsg":"ok","phone_info":` + tt.info + `}`
			}
			client, _ := recordingClient(cannedToken(body))
			phone, err := (&Service{Client: client}).PhoneNumber(context.Background(), App{AppID: testAppID, Secret: testSecret}, "code")
			if tt.want == nil {
				wantError(t, err, "getuserphonenumber", Unavailable, 0, "tok-1")
				return
			}
			if err != nil || *phone != *tt.want {
				t.Errorf("got %v %v, want %v", phone, err, *tt.want)
			}
		})
	}
}

func TestPhoneNumberNotRetriedOnBusy(t *testing.T) {
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stableTokenPath {
			io.WriteString(w, `{"access_token":"tok-1","expires_in":7200}`)
			return
		}
		calls++
		if calls == 1 {
			io.WriteString(w, `{"errcode":-1,"errmsg":"system error"}`)
			return
		}
		io.WriteString(w, `{"errcode":0,"phone_info":{"purePhoneNumber":"13800138000"}}`)
	}))
	defer srv.Close()
	_, err := newService(nil).PhoneNumber(context.Background(), testApp(srv.URL), "code")
	wantError(t, err, "getuserphonenumber", Unavailable, -1)
	if calls != 1 {
		t.Errorf("%d calls, want exactly 1", calls)
	}
}

func TestPhoneMasking(t *testing.T) {
	cn := Phone{PhoneNumber: "13800138000", PurePhoneNumber: "13800138000", CountryCode: "86"}
	intl := Phone{PhoneNumber: "+1 2025550123", PurePhoneNumber: "2025550123", CountryCode: "1"}
	short := Phone{PhoneNumber: "123456", PurePhoneNumber: "123456"}

	if got := cn.String(); got != "phone(+86 ****8000)" {
		t.Errorf("String() = %q", got)
	}
	if got := short.String(); got != "phone(****)" {
		t.Errorf("String() of a short number = %q", got)
	}
	if got := fmt.Sprintf("%#v", cn); got != "platform.phone(+86 ****8000)" {
		t.Errorf("%%#v = %q", got)
	}

	type holder struct {
		User  string
		Phone Phone
		Ptr   *Phone
	}
	for _, p := range []Phone{cn, intl, short} {
		var texts []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%10.3s"} {
			texts = append(texts, fmt.Sprintf(verb, p), fmt.Sprintf(verb, &p), fmt.Sprintf(verb, holder{"u", p, &p}))
		}
		texts = append(texts, fmt.Sprint(p), fmt.Sprintln(&p))

		var sl bytes.Buffer
		slog.New(slog.NewJSONHandler(&sl, nil)).Info("login", "phone", p, "ptr", &p)
		slog.New(slog.NewTextHandler(&sl, nil)).Info("login", "phone", p)
		texts = append(texts, sl.String())

		var zl bytes.Buffer
		logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(&zl), zap.DebugLevel))
		logger.Info("login", zap.Any("phone", p), zap.Any("ptr", &p), zap.Stringer("s", p))
		texts = append(texts, zl.String())

		for _, text := range texts {
			for _, secret := range []string{p.PurePhoneNumber, p.PhoneNumber, fmt.Sprintf("%x", p.PurePhoneNumber)} {
				if strings.Contains(text, secret) {
					t.Errorf("%q reveals %q", text, secret)
				}
			}
		}
	}

	// encoding/json is for callers that store or answer the number on
	// purpose: it keeps the fields.
	b, _ := json.Marshal(cn)
	if !strings.Contains(string(b), cn.PurePhoneNumber) {
		t.Errorf("json.Marshal = %s", b)
	}
}
