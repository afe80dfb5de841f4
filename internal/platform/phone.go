package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
)

// Bounds on a phone answer; real numbers are far shorter.
const (
	minPhoneDigits    = 4
	maxPhoneDigits    = 20
	maxPhoneNumberLen = 32
	maxCountryCodeLen = 4
)

const phoneAPI = "getuserphonenumber"

// phoneCodeFromButton tells a client which code the phone API wants: mixing
// it up with the wx.login code is the usual cause of 40029.
const phoneCodeFromButton = "it must be the code from the getPhoneNumber button " +
	"(bindgetphonenumber's e.detail.code), not the wx.login code"

// Phone is what getuserphonenumber returns (without the watermark).
//
// Its String, GoString and Format methods mask the number, so a Phone passed
// to a logger (fmt, zap, slog) does not reveal it by accident; read the
// fields to use it. encoding/json still sees the fields: a caller that
// stores or answers a Phone does so on purpose.
type Phone struct {
	// PhoneNumber is the number as the user sees it: with the country prefix
	// for non-CN numbers ("+1 2025550123"), as the platform sends it.
	PhoneNumber     string
	PurePhoneNumber string // digits only, without the country code
	CountryCode     string // e.g. "86", digits only
}

// String masks all but the last 4 digits: "phone(+86 ****8000)".
func (p Phone) String() string {
	var b strings.Builder
	b.WriteString("phone(")
	if p.CountryCode != "" {
		b.WriteString("+" + p.CountryCode + " ")
	}
	b.WriteString("****")
	// Short numbers show nothing: 4 digits of a 6-digit number are most of it.
	if n := len(p.PurePhoneNumber); n >= 7 {
		b.WriteString(p.PurePhoneNumber[n-4:])
	}
	b.WriteString(")")
	return b.String()
}

// GoString is for %#v; it masks the number like String.
func (p Phone) GoString() string {
	return "platform." + p.String()
}

// Format makes every fmt verb print the masked form (%d or %x would
// otherwise print the fields).
func (p Phone) Format(f fmt.State, verb rune) { formatMasked(f, verb, p) }

// formatMasked prints v's masked forms for every fmt verb: GoString for
// %#v, String for anything else.
func formatMasked(f fmt.State, verb rune, v interface {
	fmt.Stringer
	fmt.GoStringer
}) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, v.GoString())
		return
	}
	fmt.Fprint(f, v.String())
}

// LogValue masks the number in log/slog output, JSON handlers included.
func (p Phone) LogValue() slog.Value {
	return slog.StringValue(p.String())
}

// phoneAnswer is the success body of getuserphonenumber.
type phoneAnswer struct {
	PhoneInfo *struct {
		PhoneNumber     string `json:"phoneNumber"`
		PurePhoneNumber string `json:"purePhoneNumber"`
		// Documented as a string, sent as a number: both are accepted.
		CountryCode json.RawMessage `json:"countryCode"`
	} `json:"phone_info"`
}

// phoneCodeRefused is the message for a phone code the platform refuses.
const phoneCodeRefused = "the phone code is invalid, expired or already used; " + phoneCodeFromButton +
	": ask the user to tap the button again and post the new code"

// phoneFailures are getuserphonenumber's own errcodes.
var phoneFailures = map[int]failure{
	40029: {InvalidCode, phoneCodeRefused},
	40163: {InvalidCode, phoneCodeRefused},
	// No retry here: each success is billed, and a retry could be a second one.
	-1: {Unavailable, "the platform is busy; ask the user to tap the getPhoneNumber button again " +
		"and post the new code (a phone code is never sent twice)"},
	45011: {RateLimited, "the platform is limiting how often phone numbers can be fetched; wait a minute and try again"},
}

// PhoneNumber exchanges a phone code from the getPhoneNumber button for the
// user's phone number. Each success is billed to the app owner, so a code is
// never sent twice, not even after errcode -1; it is sent again only when the
// platform refused the access_token, which means it did not take the call.
// QQ mini programs have no such API: a QQ app gets Unsupported, without a
// call.
func (s *Service) PhoneNumber(ctx context.Context, app App, code string) (*Phone, error) {
	switch {
	case app.Kind == QQ, app.Kind == Alipay, app.Kind == Baidu:
		return nil, &Error{Code: Unsupported, API: phoneAPI, Message: noPhoneAPI(app.Kind)}
	case code == "":
		return nil, &Error{Code: InvalidCode, API: phoneAPI,
			Message: "no phone code was sent; post the code from the getPhoneNumber button " +
				"(bindgetphonenumber's e.detail.code), not the wx.login code"}
	case len(code) > maxCodeLen:
		return nil, &Error{Code: InvalidCode, API: phoneAPI,
			Message: "the phone code is malformed; " + phoneCodeFromButton + ": ask the user to tap the button again and post the new code"}
	}

	if app.Kind == Douyin {
		return s.douyinPhoneNumber(ctx, app, code)
	}
	req := jsonRequest(request{
		api:      phoneAPI,
		path:     "/wxa/business/getuserphonenumber",
		failures: phoneFailures,
		noRetry:  true,
	}, struct {
		Code string `json:"code"`
	}{code})
	var answer phoneAnswer
	if err := s.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}

	info := answer.PhoneInfo
	if info == nil {
		return nil, unavailable(phoneAPI, "the platform answered without phone_info; try again later")
	}
	return checkedPhone(info.PhoneNumber, info.PurePhoneNumber, info.CountryCode)
}

// checkedPhone is the Phone of a platform's answer, or the error for one
// that does not look like a number.
func checkedPhone(phoneNumber, pure string, rawCountryCode json.RawMessage) (*Phone, error) {
	countryCode, ok := parseCountryCode(rawCountryCode)
	if phoneNumber == "" {
		phoneNumber = pure // what CN numbers look like anyway
	}
	switch {
	case !validPureNumber(pure):
		return nil, unavailable(phoneAPI, "the platform answered without a valid purePhoneNumber; try again later")
	case !validPhoneNumber(phoneNumber):
		return nil, unavailable(phoneAPI, "the platform answered without a valid phoneNumber; try again later")
	case !ok:
		return nil, unavailable(phoneAPI, "the platform answered with a malformed countryCode; try again later")
	}
	return &Phone{PhoneNumber: phoneNumber, PurePhoneNumber: pure, CountryCode: countryCode}, nil
}

// noPhoneAPI says why an app of kind cannot trade a phone code.
func noPhoneAPI(kind Kind) string {
	switch kind {
	case Alipay:
		// my.getPhoneNumber gives the client a response AES-encrypted with
		// the app's content key, not a code for the server to trade.
		return "Alipay mini programs have no server API that trades a code for the phone number " +
			"(my.getPhoneNumber gives the mini program encrypted data, which wxauth does not decrypt); " +
			"ask the user for the number another way"
	case Baidu:
		return "Baidu smart programs have no server API that trades a code for the phone number " +
			"(the getPhoneNumber button gives encrypted data, which wxauth does not decrypt); " +
			"ask the user for the number another way"
	}
	return "QQ mini programs have no phone-number API; ask the user for the number another way"
}

// parseCountryCode reads countryCode sent as a string ("86", "+86") or a
// number (86). A missing one is "".
func parseCountryCode(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var code string
	if raw[0] == '"' {
		if json.Unmarshal(raw, &code) != nil {
			return "", false
		}
		code = strings.TrimPrefix(code, "+")
	} else {
		code = string(raw) // a number: valid only if it is all digits
	}
	if code == "" {
		return "", true
	}
	return code, len(code) <= maxCountryCodeLen && allDigits(code)
}

func validPureNumber(s string) bool {
	return len(s) >= minPhoneDigits && len(s) <= maxPhoneDigits && allDigits(s)
}

// validPhoneNumber accepts digits with the separators the platform uses
// ("+1 2025550123").
func validPhoneNumber(s string) bool {
	if len(s) == 0 || len(s) > maxPhoneNumberLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || c == '+' || c == ' ' || c == '-') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
