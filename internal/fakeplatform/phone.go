package fakeplatform

import (
	"net/http"
	"time"
)

// The phone numbers.
const (
	// PhoneNumber is the number every accepted phone code gets, as both
	// phoneNumber and purePhoneNumber.
	PhoneNumber = "13800138000"
	// PhoneCountryCode is the country code sent with PhoneNumber (as a
	// string, as documented).
	PhoneCountryCode = "86"
)

// Options.Scripted's phone codes and what they answer.
const (
	PhoneCodeNumeric    = "numeric" // PhoneNumber, countryCode sent as the JSON number 86
	PhoneCodeIntl       = "intl"    // IntlPhoneNumber, IntlPurePhoneNumber, IntlCountryCode
	IntlPhoneNumber     = "+1 2025550123"
	IntlPurePhoneNumber = "2025550123"
	IntlCountryCode     = "1"
)

// phoneNumber serves POST /wxa/business/getuserphonenumber.
func (e *Engine) phoneNumber(w http.ResponseWriter, r *http.Request) {
	appid, ok := e.checkToken(w, r)
	if !ok {
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	code := body.Code
	switch {
	case code == "", code == CodeInvalid, code == CodeUsed:
		writeFailure(w, failInvalidCode)
		return
	case e.opts.Scripted && code == CodeBusy:
		writeFailure(w, failBusy)
		return
	case e.opts.Scripted && code == CodeLimited:
		writeFailure(w, failLimited)
		return
	}
	if e.opts.Stateful && !e.redeem(e.phoneUsed, appid, code) {
		writeFailure(w, failInvalidCode)
		return
	}

	phone, pure, country := PhoneNumber, PhoneNumber, any(PhoneCountryCode)
	if e.opts.Scripted {
		switch code {
		case PhoneCodeNumeric:
			country = 86
		case PhoneCodeIntl:
			phone, pure, country = IntlPhoneNumber, IntlPurePhoneNumber, IntlCountryCode
		}
	}
	watermark := map[string]any{"timestamp": time.Now().Unix()}
	if appid != "" {
		watermark["appid"] = appid
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode": 0,
		"errmsg":  "ok",
		"phone_info": map[string]any{
			"phoneNumber":     phone,
			"purePhoneNumber": pure,
			"countryCode":     country,
			"watermark":       watermark,
		},
	})
}

// redeem marks (appid, code) used in used, and reports false when it was
// already.
func (e *Engine) redeem(used map[appCode]bool, appid, code string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := appCode{appid, code}
	if used[key] {
		return false
	}
	used[key] = true
	return true
}

// PhoneCalls is how many getuserphonenumber requests carried code, whatever
// they were answered.
func (e *Engine) PhoneCalls(code string) int {
	return recorded(e, func(rec *recording) int { return rec.phoneCalls[code] })
}
