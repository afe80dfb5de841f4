package platform

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Alipay's OpenAPI gateway: every call is a form POST to /gateway.do naming
// its method, signed with the app's private key (RSA2: SHA256withRSA); every
// answer is {"<method>_response": {...}, "sign": "..."} (or error_response),
// the member's text as sent signed with Alipay's private key.
const alipayGatewayPath = "/gateway.do"

// The names errors give Alipay's methods.
const (
	alipayOAuthAPI   = "alipay.system.oauth.token"
	alipayContentAPI = "alipay.security.risk.content.detect"
)

// alipayTime is the zone of the gateway's timestamp: Beijing time, as the
// official SDKs send it (GMT+8, no daylight saving). A fixed zone: the
// machine may have no time zone database.
var alipayTime = time.FixedZone("GMT+8", 8*60*60)

// alipayTimestampLayout is the gateway's "yyyy-MM-dd HH:mm:ss".
const alipayTimestampLayout = "2006-01-02 15:04:05"

// AlipaySignContent is the text an Alipay request's sign covers: every
// parameter but sign with a non-empty value, sorted by name, as name=value
// joined by "&", the values raw (not URL-encoded).
func AlipaySignContent(params url.Values) string {
	names := make([]string, 0, len(params))
	for name, values := range params {
		if name != "sign" && len(values) > 0 && strings.TrimSpace(values[0]) != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for i, name := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(params.Get(name))
	}
	return b.String()
}

// alipayRequest is a gateway call of method with the business parameters
// params (biz_content among them, when the method takes one), signed with
// app's private key at now.
func alipayRequest(app App, method string, params url.Values, now time.Time) (request, error) {
	form := url.Values{
		"app_id":    {app.AppID},
		"method":    {method},
		"format":    {"JSON"},
		"charset":   {"utf-8"},
		"sign_type": {"RSA2"},
		"timestamp": {now.In(alipayTime).Format(alipayTimestampLayout)},
		"version":   {"1.0"},
	}
	for name, values := range params {
		form[name] = values
	}
	if app.PrivateKey == nil {
		return request{}, unavailable(method, "this Alipay app has no private_key to sign its requests with; the operator should set private_key")
	}
	digest := sha256.Sum256([]byte(AlipaySignContent(form)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, app.PrivateKey, crypto.SHA256, digest[:])
	if err != nil {
		return request{}, unavailable(method, "signing the request with the app's private_key failed; the operator should check private_key")
	}
	form.Set("sign", base64.StdEncoding.EncodeToString(sig))
	return request{
		api:         method,
		method:      http.MethodPost,
		path:        alipayGatewayPath,
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded;charset=utf-8",
		read:        readAlipay,
	}, nil
}

// alipayStatus is the status part of every gateway answer's member.
type alipayStatus struct {
	Code    string `json:"code"`
	Msg     string `json:"msg"`
	SubCode string `json:"sub_code"`
	SubMsg  string `json:"sub_msg"`
}

// AlipayResponseMember is the name of method's answer member:
// "alipay.system.oauth.token" answers in "alipay_system_oauth_token_response".
func AlipayResponseMember(method string) string {
	return strings.ReplaceAll(method, ".", "_") + "_response"
}

// readAlipay is the gateway's envelope. The answer member (or
// error_response) is taken as the body has it, byte for byte, and its sign
// checked with Alipay's public key before anything in it is believed: a
// success that is not signed, or whose sign does not verify, is never
// taken. An unsigned error is believed (the gateway signs nothing when it
// cannot tell the app, and an error can only fail the call). The success's
// payload is the member.
func readAlipay(req request, app App, body []byte) verdict {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return notJSON(req.api)
	}
	member, isError := top[AlipayResponseMember(req.api)], false
	if member == nil {
		member, isError = top["error_response"], true
	}
	var st alipayStatus
	if member == nil || json.Unmarshal(member, &st) != nil {
		return verdict{outcome: "bad_answer", err: unavailable(req.api, "the platform's answer has no answer member; try again later")}
	}
	var sign string
	if raw := top["sign"]; raw != nil && json.Unmarshal(raw, &sign) != nil {
		sign = ""
	}
	isError = isError || (st.Code != "" && st.Code != "10000")
	switch {
	case sign != "" && !alipayVerify(app.PlatformPublicKey, member, sign):
		return verdict{outcome: "bad_signature", err: unavailable(req.api, "the answer's signature does not verify with the app's "+
			"alipay_public_key; the operator should check that alipay_public_key is Alipay's public key for this app "+
			"(支付宝公钥, not the app's own public key)")}
	case isError:
		return alipayFailure(req.api, st)
	case sign == "":
		return verdict{outcome: "bad_signature", err: unavailable(req.api, "the platform's answer is not signed, so it cannot be trusted; try again later")}
	}
	return verdict{payload: member, outcome: "10000"}
}

// alipayVerify checks an Alipay sign (SHA256withRSA, base64) over the
// member's text.
func alipayVerify(key *rsa.PublicKey, member []byte, sign string) bool {
	sig, err := base64.StdEncoding.DecodeString(sign)
	if err != nil || key == nil {
		return false
	}
	digest := sha256.Sum256(member)
	return rsa.VerifyPKCS1v15(key, crypto.SHA256, digest[:], sig) == nil
}

// alipaySubFailures are the gateway's sub_codes that wxauth tells apart
// (Alipay's public error table; isv.code-invalid from oauth.token's).
var alipaySubFailures = map[string]failure{
	"isv.code-invalid": {InvalidCode, "the auth code is invalid, expired or already used; call my.getAuthCode again and post the new authCode"},
	"isv.invalid-signature": {Unavailable, "Alipay refused the request's signature; the operator should check that private_key is " +
		"the app's private key whose public key is set in Alipay's console (接口加签方式)"},
	"isv.invalid-signature-type": {Unavailable, "Alipay refused the signature type RSA2; the operator should set the app's signing to RSA2 in Alipay's console"},
	"isv.missing-signature-key":  {Unavailable, "Alipay has no public key for this app; the operator should set the app's RSA2 public key in Alipay's console"},
	"isv.invalid-app-id":         {Unavailable, "Alipay does not know the app's app_id; the operator should check the appid"},
	"isv.invalid-timestamp":      {Unavailable, "Alipay refused the request's timestamp; the operator should check this server's clock"},
	"isv.insufficient-isv-permissions": {Unavailable, "Alipay says the app may not call this API; the operator should add the " +
		"capability to the app in Alipay's console"},
}

// alipayFailure is the verdict on a gateway error. code 20000 (the service
// is unavailable) is retried once; an unknown sub_code is Unavailable.
func alipayFailure(api string, st alipayStatus) verdict {
	f, ok := alipaySubFailures[st.SubCode]
	switch {
	case ok:
	case st.Code == "20000":
		f = failure{Unavailable, "the platform is busy and stayed busy on a retry; try again shortly"}
	default:
		f = failure{Unavailable, "the platform answered code " + st.Code + " (" + st.SubCode + "), which wxauth does not know; try again later"}
	}
	code, _ := strconv.Atoi(st.Code)
	msg := strings.TrimSpace(st.SubCode + " " + st.SubMsg)
	if msg == "" {
		msg = st.Msg
	}
	outcome := st.Code
	if st.SubCode != "" {
		outcome = st.SubCode
	}
	return verdict{outcome: outcome, err: newError(api, code, msg, f), retry: st.Code == "20000"}
}

// alipayTokenAnswer is oauth.token's member. access_token and
// refresh_token are not decoded: wxauth never calls Alipay on the user's
// behalf, and a secret not kept cannot leak.
type alipayTokenAnswer struct {
	UserID string `json:"user_id"`
	OpenID string `json:"open_id"`
}

// alipayOAuthToken trades a my.getAuthCode authCode for the user's id
// (alipay.system.oauth.token). Apps in openid mode get open_id; older apps
// user_id; during Alipay's switch, both. The open_id is taken when there
// is one, and Session.IDType says which it is.
func (c *Client) alipayOAuthToken(ctx context.Context, app App, code string) (*Session, error) {
	req, err := alipayRequest(app, alipayOAuthAPI, url.Values{"grant_type": {"authorization_code"}, "code": {code}}, time.Now())
	if err != nil {
		return nil, err
	}
	var answer alipayTokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}
	s := &Session{OpenID: answer.OpenID, IDType: IDTypeOpenID}
	if s.OpenID == "" {
		s.OpenID, s.IDType = answer.UserID, IDTypeUserID
	}
	if err := checkIdentity(alipayOAuthAPI, s.OpenID, ""); err != nil {
		return nil, err
	}
	return s, nil
}

// alipayCheckText is alipay.security.risk.content.detect: REJECTED is
// risky, PASSED passes, anything else is for review.
func (c *Client) alipayCheckText(ctx context.Context, app App, content string) (Verdict, error) {
	biz, _ := json.Marshal(map[string]string{"content": content}) // a plain string: cannot fail
	req, err := alipayRequest(app, alipayContentAPI, url.Values{"biz_content": {string(biz)}}, time.Now())
	if err != nil {
		return Verdict{}, err
	}
	var answer struct {
		Action string `json:"action"`
	}
	if err := c.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}
	switch answer.Action {
	case "REJECTED":
		return Verdict{Suggest: SuggestRisky}, nil
	case "PASSED":
		return Verdict{Suggest: SuggestPass}, nil
	}
	return Verdict{Suggest: SuggestReview}, nil
}
