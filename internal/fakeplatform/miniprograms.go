package fakeplatform

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// The paths of the Douyin, Alipay and Baidu APIs. One engine serves them
// all, beside WeChat's and QQ's: their paths differ, so one api_base (the
// fake's URL) stands for every host of every platform.
const (
	douyinCode2SessionPath = "/api/apps/v2/jscode2session"
	douyinTokenPath        = "/api/apps/v2/token"
	douyinClientTokenPath  = "/oauth/client_token/"
	douyinTextCheckPath    = "/api/v2/tags/text/antidirt"
	douyinImageCheckPath   = "/api/apps/censor/image"
	douyinPhonePath        = "/api/apps/v1/get_phonenumber_info/"
	alipayGatewayPath      = "/gateway.do"
	baiduCode2SessionPath  = "/oauth/jscode2sessionkey"
	baiduTokenPath         = "/oauth/2.0/token"
	baiduTextCheckPath     = "/rest/2.0/smartapp/riskDetection/v2/syncCheckText"
)

// alipayOAuthMethod is the gateway method of Alipay's login.
const alipayOAuthMethod = "alipay.system.oauth.token"

// otherLogin is a Douyin, Alipay or Baidu login request as it arrives:
// whose code, and the secret it carries ("" for Alipay, which signs
// instead). ok is false for any other request.
func otherLogin(r *http.Request, body []byte) (appid, code, secret string, ok bool) {
	switch r.URL.Path {
	case douyinCode2SessionPath:
		var b struct{ AppID, Secret, Code string }
		if json.Unmarshal(body, &b) != nil {
			return "", "", "", true // counted as code ""
		}
		return b.AppID, b.Code, b.Secret, true
	case alipayGatewayPath:
		form, _ := url.ParseQuery(string(body))
		if form.Get("method") != alipayOAuthMethod {
			return "", "", "", false
		}
		return form.Get("app_id"), form.Get("code"), "", true
	case baiduCode2SessionPath:
		form := formOf(r, body)
		return form.Get("client_id"), form.Get("code"), form.Get("sk"), true
	}
	return "", "", "", false
}

// formOf is a form request's parameters: the query's, and the body's
// (application/x-www-form-urlencoded) over them.
func formOf(r *http.Request, body []byte) url.Values {
	form := r.URL.Query()
	if b, err := url.ParseQuery(string(body)); err == nil {
		for k, v := range b {
			form[k] = v
		}
	}
	return form
}

// codeFate decides a Douyin, Alipay or Baidu code exchange before any
// identity is made: the scripted codes, then the failure codes. None of
// these platforms documents a high-risk refusal like WeChat's 40226, so
// "blocked" is an ordinary code there; "used" is "invalid" (they have no
// code for a used code either); "limited" and "quota" are an HTTP 429
// (they document no rate-limit answer of their own).
func (e *Engine) codeFate(w http.ResponseWriter, r *http.Request, appid, code string) fate {
	switch f := e.scriptedFate(w, r, code, func() bool { return e.firstAttempt(e.attempts, appid, code) }); f {
	case fateQuota:
		return fateLimited
	case fateGoOn:
	default:
		return f
	}
	switch code {
	case CodeInvalid, CodeUsed:
		return fateInvalid
	case CodeBusy:
		return fateBusy
	case CodeLimited:
		return fateLimited
	}
	return fateGoOn
}

// writeLimited answers an HTTP 429, as a platform's gateway limits calls.
func writeLimited(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "60")
	writeJSON(w, http.StatusTooManyRequests, map[string]string{"message": "too many requests"})
}

// writeUnavailable answers an HTTP 503, as a busy front end does where the
// platform documents no busy answer (Baidu).
func writeUnavailable(w http.ResponseWriter) {
	writeJSON(w, http.StatusServiceUnavailable, map[string]string{"message": "service unavailable"})
}

// firstLogin is a stateful engine's single use of a code: it reports
// false when (appid, code) logged in before, and otherwise remembers it and
// the user's newest session_key ("" for none). The sandbox lets every code
// log in again and again.
func (e *Engine) firstLogin(appid, code, openid, sessionKey string) bool {
	if !e.opts.Stateful {
		return true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	key := appCode{appid, code}
	if e.redeemed[key] {
		return false
	}
	e.redeemed[key] = true
	if sessionKey != "" {
		e.rec.sessionKeys[appUser{appid, openid}] = sessionKey
	}
	return true
}

// sessionKey is the session_key of a login of the other platforms: the
// sandbox's SessionKey (16 bytes), or n fresh random bytes.
func (e *Engine) sessionKey(appid, code string, n int) string {
	if e.opts.Stateful {
		return base64.StdEncoding.EncodeToString(randomBytes(n))
	}
	if n == 16 {
		return SessionKey(appid, code)
	}
	return base64.StdEncoding.EncodeToString(derive("session_key", strconv.Itoa(n), appid, code)[:n])
}

// AlipayUserID is the user_id Alipay gives the user of code: "2088" and 12
// digits, as Alipay's are. Like a real user_id it is the same in every app.
func AlipayUserID(code string) string {
	d := derive("alipay_user_id", code)
	id := []byte("2088")
	for _, b := range d[:12] {
		id = append(id, '0'+b%10)
	}
	return string(id)
}

// The scripted login codes of Alipay (Options.Scripted): which of its ids
// the gateway answers.
const (
	// AlipayCodeUserID answers only user_id, as for an app from before
	// Alipay's openid.
	AlipayCodeUserID = "userid"
	// AlipayCodeBothIDs answers user_id and open_id, as during an app's
	// switch to openid.
	AlipayCodeBothIDs = "bothids"
)
