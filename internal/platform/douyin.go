package platform

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strconv"
	"time"
)

// Douyin's mini-program server APIs (developer.open-douyin.com). Its answers
// carry err_no and err_tips (err_msg on open.douyin.com) at the top and the
// result under data; a log_id names the call for Douyin's support.
const (
	douyinCode2SessionPath = "/api/apps/v2/jscode2session"
	douyinTokenPath        = "/api/apps/v2/token"
	douyinClientTokenPath  = "/oauth/client_token/"
	douyinTextCheckPath    = "/api/v2/tags/text/antidirt"
	douyinImageCheckPath   = "/api/apps/censor/image"
	douyinPhonePath        = "/api/apps/v1/get_phonenumber_info/"
)

// douyinAnswer is the envelope of Douyin's err_no APIs.
type douyinAnswer struct {
	ErrNo   *int64          `json:"err_no"`
	ErrTips string          `json:"err_tips"`
	ErrMsg  string          `json:"err_msg"`
	LogID   string          `json:"log_id"`
	Data    json.RawMessage `json:"data"`
}

// readDouyin is the envelope of Douyin's err_no APIs: a success is err_no 0
// and its answer is data. own says what the API's err_no values mean, and
// tokenRefused which of them refuse the access_token the call carried.
func readDouyin(own map[int]failure, tokenRefused ...int) envelope {
	return func(req request, app App, body []byte) verdict {
		var a douyinAnswer
		if json.Unmarshal(body, &a) != nil || a.ErrNo == nil {
			return notJSON(req.api)
		}
		errNo := int(*a.ErrNo)
		v := verdict{payload: a.Data, outcome: strconv.Itoa(errNo)}
		if errNo != 0 {
			msg := a.ErrTips
			if msg == "" {
				msg = a.ErrMsg
			}
			v.err = tableError(req.api, errNo, withLogID(msg, a.LogID), own, app.Secret, req.accessToken)
			v.err.tokenRefused = req.accessToken != "" && slices.Contains(tokenRefused, errNo)
			v.retry = errNo == -1
		}
		return v
	}
}

// withLogID appends Douyin's log_id to its message, for the logs.
func withLogID(msg, logID string) string {
	if logID == "" {
		return msg
	}
	return msg + " (log_id " + logID + ")"
}

// douyinBusy is the message of err_no -1 after the retry.
var douyinBusy = failure{Unavailable, "the platform is busy and stayed busy on a retry; try again shortly"}

// douyinCredentials are the err_no values that refuse the app itself.
var douyinCredentials = map[int]failure{
	-1:    douyinBusy,
	40015: {Unavailable, "the platform does not know the app's appid (err_no 40015); the operator should check the appid"},
	40017: {Unavailable, "the platform rejected the app's secret (err_no 40017); the operator should check the secret"},
}

// douyinLoginFailures are jscode2session's err_no values. Douyin documents
// no code for a used or expired code, nor a rate limit: a spent code is a
// wrong one (40018).
var douyinLoginFailures = withFailures(douyinCredentials, map[int]failure{
	40014: {Unavailable, "the platform says the login request's parameters are bad (err_no 40014); try again later"},
	40018: {InvalidCode, "the login code is invalid, expired or already used; call tt.login again and post the new code"},
	40019: {Unavailable, "the platform refused the request's anonymous_code (err_no 40019); try again later"},
})

// withFailures is base with more's entries added.
func withFailures(base, more map[int]failure) map[int]failure {
	all := make(map[int]failure, len(base)+len(more))
	for k, v := range base {
		all[k] = v
	}
	for k, v := range more {
		all[k] = v
	}
	return all
}

// douyinSession is jscode2session's data.
type douyinSession struct {
	SessionKey string `json:"session_key"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
}

// douyinCode2Session exchanges a tt.login code. anonymous_code is sent
// empty, as Douyin's own example does: wxauth logs in users, not devices.
func (c *Client) douyinCode2Session(ctx context.Context, app App, code string) (*Session, error) {
	const api = "code2session"
	req := jsonRequest(request{api: api, path: douyinCode2SessionPath, read: readDouyin(douyinLoginFailures)},
		struct {
			AppID         string `json:"appid"`
			Secret        string `json:"secret"`
			Code          string `json:"code"`
			AnonymousCode string `json:"anonymous_code"`
		}{app.AppID, app.Secret, code, ""})
	var answer douyinSession
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}
	// Douyin's session_key is WeChat's: base64 of an AES-128 key.
	return checkedSession(api, answer.OpenID, answer.UnionID, answer.SessionKey, sessionKeyLen)
}

// douyinTokenAnswer is the data of Douyin's token APIs.
type douyinTokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
	ErrorCode   int    `json:"error_code"` // client_token's own error, inside data
	Description string `json:"description"`
}

// douyinTokenSource is the app's access_token (/api/apps/v2/token), for the
// content checks. Fetching it again cuts the old one's life to 5 minutes,
// which the Service's cache (one fetch per expiry) keeps rare.
var douyinTokenSource = tokenSource{api: "douyin_token", fetch: func(c *Client, ctx context.Context, app App) (string, time.Duration, error) {
	req := jsonRequest(request{api: "douyin_token", path: douyinTokenPath, read: readDouyin(withFailures(douyinCredentials, map[int]failure{
		40020: {Unavailable, "the platform refused the token request's grant_type (err_no 40020); try again later"},
	}))}, struct {
		AppID     string `json:"appid"`
		Secret    string `json:"secret"`
		GrantType string `json:"grant_type"`
	}{app.AppID, app.Secret, "client_credential"})
	var answer douyinTokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return "", 0, err
	}
	return checkedToken("douyin_token", answer.AccessToken, answer.ExpiresIn)
}}

// douyinClientTokenSource is the app's client_token
// (open.douyin.com/oauth/client_token/), which the newer open.douyin.com
// APIs (phone numbers) take in the access-token header. Its answer has no
// err_no: the error is data.error_code.
var douyinClientTokenSource = tokenSource{api: "client_token", fetch: func(c *Client, ctx context.Context, app App) (string, time.Duration, error) {
	const api = "client_token"
	req := jsonRequest(request{api: api, host: openHost, path: douyinClientTokenPath, read: readClientToken}, struct {
		GrantType    string `json:"grant_type"`
		ClientKey    string `json:"client_key"`
		ClientSecret string `json:"client_secret"`
	}{"client_credential", app.AppID, app.Secret})
	var answer douyinTokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return "", 0, err
	}
	return checkedToken(api, answer.AccessToken, answer.ExpiresIn)
}}

// clientTokenFailures are client_token's data.error_code values.
var clientTokenFailures = map[int]failure{
	10002: {Unavailable, "the platform says the client_token request's parameters are bad (error_code 10002); try again later"},
	10003: {Unavailable, "the platform does not know the app's appid as a client_key (error_code 10003); the operator should check the appid"},
	10013: {Unavailable, "the platform rejected the app's appid and secret (error_code 10013); the operator should check the secret"},
}

func readClientToken(req request, app App, body []byte) verdict {
	var a struct {
		Data    *douyinTokenAnswer `json:"data"`
		Message string             `json:"message"`
	}
	if json.Unmarshal(body, &a) != nil || a.Data == nil {
		return notJSON(req.api)
	}
	v := verdict{outcome: strconv.Itoa(a.Data.ErrorCode)}
	if a.Data.ErrorCode != 0 {
		v.err = tableError(req.api, a.Data.ErrorCode, a.Data.Description, clientTokenFailures, app.Secret)
		return v
	}
	v.payload, _ = json.Marshal(a.Data) // plain data: cannot fail
	return v
}

// checkedToken refuses a token answer that does not look like one, and
// caps its life at maxTokenLifetime.
func checkedToken(api, token string, expiresIn int64) (string, time.Duration, error) {
	switch {
	case !validToken(token):
		return "", 0, unavailable(api, "the platform answered without a valid access_token; try again later")
	case expiresIn <= 0:
		return "", 0, unavailable(api, "the platform answered without a valid expires_in; try again later")
	}
	life := maxTokenLifetime
	if expiresIn < int64(maxTokenLifetime/time.Second) {
		life = time.Duration(expiresIn) * time.Second
	}
	return token, life, nil
}

// predict is one model's opinion in Douyin's content checks.
type predict struct {
	Hit bool `json:"hit"`
}

func anyHit(predicts []predict) bool {
	for _, p := range predicts {
		if p.Hit {
			return true
		}
	}
	return false
}

// douyinCheckText is Douyin's text check (antidirt): risky when any model
// hits. The token goes in the X-Token header; the answer has no err_no:
// a failure is a top-level code (401: the token).
func (s *Service) douyinCheckText(ctx context.Context, app App, content string) (Verdict, error) {
	const api = "antidirt"
	req := jsonRequest(request{api: api, path: douyinTextCheckPath, tokenHeader: "X-Token", read: readAntidirt},
		map[string][]map[string]string{"tasks": {{"content": content}}})
	var answer struct {
		Data []struct {
			Code     int       `json:"code"`
			Msg      string    `json:"msg"`
			Predicts []predict `json:"predicts"`
		} `json:"data"`
	}
	if err := s.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}
	if len(answer.Data) != 1 || answer.Data[0].Code != 0 {
		return Verdict{}, unavailable(api, "the platform's text check answered without a result; try again later")
	}
	if anyHit(answer.Data[0].Predicts) {
		return Verdict{Suggest: SuggestRisky}, nil
	}
	return Verdict{Suggest: SuggestPass}, nil
}

var antidirtFailures = map[int]failure{
	400: {Unavailable, "the platform says the text check's parameters are bad (code 400); try again later"},
	401: {Unavailable, "the platform refused the app's access_token (code 401) even after it was refreshed; try again later"},
}

func readAntidirt(req request, app App, body []byte) verdict {
	var a struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		ErrorID string `json:"error_id"`
	}
	if json.Unmarshal(body, &a) != nil {
		return notJSON(req.api)
	}
	v := verdict{payload: body, outcome: strconv.Itoa(a.Code)}
	if a.Code != 0 {
		v.err = tableError(req.api, a.Code, a.Message, antidirtFailures, app.Secret, req.accessToken)
		v.err.tokenRefused = req.accessToken != "" && a.Code == 401
	}
	return v
}

// douyinCheckImage is Douyin's image check (v2): the image as base64
// image_data, the token in the body's access_token; risky when any model
// hits.
func (s *Service) douyinCheckImage(ctx context.Context, app App, image []byte) (Verdict, error) {
	const api = "censor_image"
	req := jsonRequest(request{api: api, path: douyinImageCheckPath, tokenField: "access_token", read: readCensorImage},
		map[string]string{"app_id": app.AppID, "image_data": base64.StdEncoding.EncodeToString(image)})
	var answer struct {
		Predicts []predict `json:"predicts"`
	}
	if err := s.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}
	if len(answer.Predicts) == 0 {
		return Verdict{}, unavailable(api, "the platform's image check answered without a result; try again later")
	}
	if anyHit(answer.Predicts) {
		return Verdict{Suggest: SuggestRisky}, nil
	}
	return Verdict{Suggest: SuggestPass}, nil
}

var censorImageFailures = map[int]failure{
	1: {Unavailable, "the platform says the image check's parameters are bad (error 1); try again later"},
	2: {Unavailable, "the platform refused the app's access_token (error 2) even after it was refreshed; try again later"},
	3: {Unavailable, "the platform could not read the image (error 3); upload it again"},
	4: {Unavailable, "the platform's image check failed (error 4); try again later"},
}

func readCensorImage(req request, app App, body []byte) verdict {
	var a struct {
		Error   *int   `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &a) != nil || a.Error == nil {
		return notJSON(req.api)
	}
	v := verdict{payload: body, outcome: strconv.Itoa(*a.Error)}
	if *a.Error != 0 {
		v.err = tableError(req.api, *a.Error, a.Message, censorImageFailures, app.Secret, req.accessToken)
		v.err.tokenRefused = req.accessToken != "" && *a.Error == 2
	}
	return v
}

// douyinPhoneFailures are get_phonenumber_info's err_no values. Douyin's
// page for this API lists none; these are the codes of its open.douyin.com
// family that SDKs handle (28005187: the phone code expired), and the
// token ones (28001003 invalid, 28001008 expired) make the Service fetch a
// new client_token and send the code again.
var douyinPhoneFailures = map[int]failure{
	-1: {Unavailable, "the platform is busy; ask the user to tap the getPhoneNumber button again " +
		"and post the new code (a phone code is never sent twice)"},
	28005187: {InvalidCode, "the phone code is invalid, expired or already used; it must be the code from the " +
		"getPhoneNumber button (e.detail.code), not the tt.login code: ask the user to tap the button again and post the new code"},
	28001003: {Unavailable, "the platform refused the app's client_token (err_no 28001003) even after it was refreshed; try again later"},
	28001008: {Unavailable, "the app's client_token expired (err_no 28001008) even after it was refreshed; try again later"},
}

// douyinPhonePlain is the decrypted data of get_phonenumber_info.
type douyinPhonePlain struct {
	PhoneNumber     string          `json:"phoneNumber"`
	PurePhoneNumber string          `json:"purePhoneNumber"`
	CountryCode     json.RawMessage `json:"countryCode"`
	Watermark       struct {
		AppID string `json:"appid"`
	} `json:"watermark"`
}

// douyinPhoneNumber trades a getPhoneNumber code (base library 3.51+,
// e.detail.code) for the number: the answer's data is the number as JSON,
// encrypted (RSA, PKCS #1 v1.5) with the app's public key from Douyin's
// console, and decrypted here with the app's private_key. The ciphertext
// comes from Douyin over TLS, never from the client, so the padding's
// error oracle does not apply. The code is never sent twice.
func (s *Service) douyinPhoneNumber(ctx context.Context, app App, code string) (*Phone, error) {
	if app.PrivateKey == nil {
		return nil, &Error{Code: Unsupported, API: phoneAPI, Message: "this Douyin app has no private_key configured, so it " +
			"cannot read phone numbers (Douyin encrypts them with the app's public key); the operator should set private_key"}
	}
	req := jsonRequest(request{api: phoneAPI, host: openHost, path: douyinPhonePath, tokenHeader: "access-token",
		read: readDouyin(douyinPhoneFailures, 28001003, 28001008), noRetry: true},
		struct {
			Code string `json:"code"`
		}{code})
	var data string
	if err := s.callWith(ctx, app, douyinClientTokenSource, req, &data); err != nil {
		return nil, err
	}
	plain, err := rsaDecrypt(app.PrivateKey, data)
	if err != nil {
		return nil, unavailable(phoneAPI, "the phone number from the platform does not decrypt with the app's private_key; "+
			"the operator should check that private_key matches the public key in Douyin's console")
	}
	var p douyinPhonePlain
	if json.Unmarshal(plain, &p) != nil {
		return nil, unavailable(phoneAPI, "the decrypted phone number is not the expected JSON; try again later")
	}
	if p.Watermark.AppID != "" && p.Watermark.AppID != app.AppID {
		return nil, unavailable(phoneAPI, "the phone number from the platform is for another app (its watermark's appid differs); try again later")
	}
	return checkedPhone(p.PhoneNumber, p.PurePhoneNumber, p.CountryCode)
}

// rsaDecrypt decrypts base64 data block by block (a key's size each) with
// RSA PKCS #1 v1.5, as Douyin encrypts.
func rsaDecrypt(key *rsa.PrivateKey, data string) ([]byte, error) {
	ct, err := base64.StdEncoding.DecodeString(data)
	size := key.Size()
	if err != nil || len(ct) == 0 || len(ct)%size != 0 {
		return nil, rsa.ErrDecryption
	}
	var plain []byte
	for len(ct) > 0 {
		block, err := rsa.DecryptPKCS1v15(nil, key, ct[:size])
		if err != nil {
			return nil, err
		}
		plain = append(plain, block...)
		ct = ct[size:]
	}
	return plain, nil
}
