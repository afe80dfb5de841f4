package fakeplatform

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Alipay's OpenAPI gateway: one form POST per call, naming its method,
// signed with the app's private key; one JSON answer, the method's member
// signed with Alipay's private key.

// alipayContentMethod is the gateway method of the text check.
const alipayContentMethod = "alipay.security.risk.content.detect"

// alipayZone is the zone of the gateway's timestamps (Beijing time).
var alipayZone = time.FixedZone("GMT+8", 8*60*60)

// alipayClockSkew is how far a request's timestamp may be from the fake's
// clock: a client that sent UTC (8 hours off) is caught.
const alipayClockSkew = 15 * time.Minute

// alipayError is a gateway error member.
type alipayError struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code,omitempty"`
	SubMsg  string `json:"sub_msg,omitempty"`
}

var (
	alipayBadSignature = alipayError{"40002", "Invalid Arguments", "isv.invalid-signature", "无效签名"}
	alipayBadAppID     = alipayError{"40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数"}
	alipayBadTimestamp = alipayError{"40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数"}
	alipayBadCode      = alipayError{"40002", "Invalid Arguments", "isv.code-invalid", "授权码code无效"}
	alipayBusy         = alipayError{"20000", "Service Currently Unavailable", "isp.unknow-error", "系统繁忙"}
)

// alipayGateway serves POST /gateway.do: it checks the common parameters
// and the request's RSA2 signature (with the app's public key), then
// answers the method.
func (e *Engine) alipayGateway(w http.ResponseWriter, r *http.Request) {
	var rejected bool // for its credentials or parameters (LoginStats)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	form, perr := url.ParseQuery(string(body))
	if err != nil || perr != nil {
		writeAlipay(w, "error_response", alipayError{"40002", "Invalid Arguments", "isv.invalid-format", "无效数据格式"}, true)
		return
	}
	for k, v := range r.URL.Query() { // the official SDKs send the common parameters in the query
		if _, inBody := form[k]; !inBody {
			form[k] = v
		}
	}
	appid, method := form.Get("app_id"), form.Get("method")
	member := strings.ReplaceAll(method, ".", "_") + "_response"
	if method == alipayOAuthMethod {
		defer func() {
			if rejected {
				e.rejected(form.Get("code"))
			}
		}()
	}
	if _, ok := e.checkApp(appid, ""); !ok || appid == "" {
		// The gateway cannot tell whose key to sign with: unsigned.
		rejected = true
		writeAlipay(w, "error_response", alipayBadAppID, false)
		return
	}
	rejected = true
	switch {
	case !alipaySignatureValid(e.appPublicKey(appid), form):
		writeAlipay(w, "error_response", alipayBadSignature, true)
		return
	case form.Get("sign_type") != "RSA2":
		writeAlipay(w, member, alipayError{"40002", "Invalid Arguments", "isv.invalid-signature-type", "无效签名类型"}, true)
		return
	case !strings.EqualFold(form.Get("charset"), "utf-8"):
		writeAlipay(w, member, alipayError{"40002", "Invalid Arguments", "isv.invalid-charset", "字符集错误"}, true)
		return
	case form.Get("version") != "1.0" || (form.Get("format") != "" && form.Get("format") != "JSON"):
		writeAlipay(w, member, alipayError{"40002", "Invalid Arguments", "isv.invalid-format", "无效数据格式"}, true)
		return
	case !alipayTimestampValid(form.Get("timestamp")):
		writeAlipay(w, member, alipayBadTimestamp, true)
		return
	}
	rejected = false
	switch method {
	case alipayOAuthMethod:
		e.alipayOAuthToken(w, r, form, member)
	case alipayContentMethod:
		e.alipayContentDetect(w, form, member)
	default:
		writeAlipay(w, "error_response", alipayError{"40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名"}, true)
	}
}

// alipayOAuthToken answers alipay.system.oauth.token: open_id for the
// user of code (the app is in openid mode), or with Options.Scripted's
// AlipayCodeUserID and AlipayCodeBothIDs user_id, or both.
func (e *Engine) alipayOAuthToken(w http.ResponseWriter, r *http.Request, form url.Values, member string) {
	appid, code := form.Get("app_id"), form.Get("code")
	switch e.codeFate(w, r, appid, code) {
	case fateAnswered:
		return
	case fateBusy:
		writeAlipay(w, member, alipayBusy, true)
		return
	case fateLimited:
		writeLimited(w)
		return
	case fateInvalid:
		writeAlipay(w, member, alipayBadCode, true)
		return
	}
	switch {
	case form.Get("grant_type") != "authorization_code":
		writeAlipay(w, member, alipayError{"40002", "Invalid Arguments", "isv.grant-type-invalid", "不支持的grantType"}, true)
		return
	case code == "":
		writeAlipay(w, member, alipayError{"40001", "Missing Required Arguments", "isv.missing-code", "缺少code参数"}, true)
		return
	}
	openid := OpenID(appid, code)
	if !e.firstLogin(appid, code, openid, "") {
		writeAlipay(w, member, alipayBadCode, true) // a code works once
		return
	}
	answer := map[string]any{
		"access_token": "authusrB" + derived(32, "alipay_access_token", appid, code), "expires_in": 1296000,
		"refresh_token": "authusrB" + derived(32, "alipay_refresh_token", appid, code), "re_expires_in": 2592000,
		"auth_start": time.Now().In(alipayZone).Format("2006-01-02 15:04:05"),
	}
	switch {
	case e.opts.Scripted && code == AlipayCodeUserID:
		answer["user_id"] = AlipayUserID(code)
	case e.opts.Scripted && code == AlipayCodeBothIDs:
		answer["user_id"], answer["open_id"] = AlipayUserID(code), openid
	case e.opts.Scripted && code == CodeBadOpenID:
		answer["open_id"] = "../../etc"
	default:
		answer["open_id"] = openid
	}
	writeAlipay(w, member, answer, true)
}

// alipayContentDetect answers alipay.security.risk.content.detect:
// REJECTED for risky text, PASSED otherwise.
func (e *Engine) alipayContentDetect(w http.ResponseWriter, form url.Values, member string) {
	var biz struct {
		Content string `json:"content"`
	}
	if json.Unmarshal([]byte(form.Get("biz_content")), &biz) != nil || biz.Content == "" {
		writeAlipay(w, member, alipayError{"40002", "Invalid Arguments", "isv.invalid-biz-content", "biz_content"}, true)
		return
	}
	appid := form.Get("app_id")
	e.record(func(rec *recording) {
		rec.textChecks = append(rec.textChecks, TextCheck{AppID: appid, Content: biz.Content})
	})
	answer := map[string]any{"code": "10000", "msg": "Success", "action": "PASSED", "keywords": []string{}, "unique_id": "sandbox"}
	if isRiskyText(biz.Content) {
		answer["action"], answer["keywords"] = "REJECTED", []string{RiskyMarker}
	}
	writeAlipay(w, member, answer, true)
}

// alipaySignatureValid checks an Alipay request's sign: RSA2 over the
// parameters but sign, non-empty, sorted, joined raw.
func alipaySignatureValid(pub *rsa.PublicKey, form url.Values) bool {
	sig, err := base64.StdEncoding.DecodeString(form.Get("sign"))
	if err != nil || len(sig) == 0 {
		return false
	}
	names := make([]string, 0, len(form))
	for name := range form {
		if name != "sign" && strings.TrimSpace(form.Get(name)) != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	pairs := make([]string, len(names))
	for i, name := range names {
		pairs[i] = name + "=" + form.Get(name)
	}
	digest := sha256.Sum256([]byte(strings.Join(pairs, "&")))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
}

// alipayTimestampValid reports whether a request's timestamp is
// "yyyy-MM-dd HH:mm:ss" in Beijing time, near now.
func alipayTimestampValid(s string) bool {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, alipayZone)
	if err != nil {
		return false
	}
	d := time.Since(t)
	return d < alipayClockSkew && d > -alipayClockSkew
}

// writeAlipay answers {member: v, "sign": ...}, the member's text signed
// with Alipay's private key when signed.
func writeAlipay(w http.ResponseWriter, member string, v any, signed bool) {
	text, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "fakeplatform: cannot encode answer", http.StatusInternalServerError)
		return
	}
	name, _ := json.Marshal(member) // a string: cannot fail
	body := append(append(append([]byte("{"), name...), ':'), text...)
	if signed {
		digest := sha256.Sum256(text)
		sig, err := rsa.SignPKCS1v15(rand.Reader, SandboxKeys().Alipay, crypto.SHA256, digest[:])
		if err != nil {
			http.Error(w, "fakeplatform: cannot sign answer", http.StatusInternalServerError)
			return
		}
		body = append(append(append(body, `,"sign":"`...), base64.StdEncoding.EncodeToString(sig)...), '"')
	}
	body = append(body, '}')
	w.Header().Set("Content-Type", "text/html;charset=utf-8") // as the gateway labels its JSON
	w.Write(body)
}
