package fakeplatform

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Douyin's answers: err_no and err_tips at the top, the result under data,
// and a log_id.

// douyinFailure is an err_no answer.
type douyinFailure struct {
	ErrNo   int    `json:"err_no"`
	ErrTips string `json:"err_tips"`
}

var (
	douyinBadParams = douyinFailure{40014, "bad params"}
	douyinBadAppID  = douyinFailure{40015, "bad appid"}
	douyinBadSecret = douyinFailure{40017, "bad secret"}
	douyinBadCode   = douyinFailure{40018, "bad code"}
	douyinBusy      = douyinFailure{-1, "system error"}
)

// writeDouyin answers err_no 0 with data.
func writeDouyin(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, map[string]any{"err_no": 0, "err_tips": "success", "log_id": "sandbox", "data": data})
}

func writeDouyinFailure(w http.ResponseWriter, f douyinFailure) {
	writeJSON(w, http.StatusOK, map[string]any{"err_no": f.ErrNo, "err_tips": f.ErrTips, "log_id": "sandbox"})
}

// douyinApp is the answer to Douyin credentials that a registered app
// does not have (AddApp), and true when they are fine.
func (e *Engine) douyinApp(appid, secret string) (douyinFailure, bool) {
	f, ok := e.checkApp(appid, secret)
	switch {
	case ok:
		return douyinFailure{}, true
	case f == failInvalidAppID:
		return douyinBadAppID, false
	}
	return douyinBadSecret, false
}

// douyinCode2Session serves POST /api/apps/v2/jscode2session (JSON appid,
// secret, code, anonymous_code).
func (e *Engine) douyinCode2Session(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AppID         string  `json:"appid"`
		Secret        string  `json:"secret"`
		Code          string  `json:"code"`
		AnonymousCode *string `json:"anonymous_code"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if f, ok := e.douyinApp(body.AppID, body.Secret); !ok {
		e.rejected(body.Code)
		writeDouyinFailure(w, f)
		return
	}
	switch e.codeFate(w, r, body.AppID, body.Code) {
	case fateAnswered:
		return
	case fateBusy:
		writeDouyinFailure(w, douyinBusy)
		return
	case fateLimited:
		writeLimited(w)
		return
	case fateInvalid:
		writeDouyinFailure(w, douyinBadCode)
		return
	}
	if body.AppID == "" || body.Code == "" || body.AnonymousCode == nil {
		// The client always sends anonymous_code, if empty, as Douyin's
		// own example does.
		e.rejected(body.Code)
		writeDouyinFailure(w, douyinBadParams)
		return
	}
	openid, sessionKey := OpenID(body.AppID, body.Code), e.sessionKey(body.AppID, body.Code, 16)
	remembered := sessionKey
	if e.opts.Scripted && (body.Code == CodeBadOpenID || body.Code == CodeBadKey) {
		remembered = "" // garbage answers: no session to remember
	}
	if !e.firstLogin(body.AppID, body.Code, openid, remembered) {
		writeDouyinFailure(w, douyinBadCode) // Douyin has no "used" code: a spent code is a bad one
		return
	}
	data := map[string]string{"session_key": sessionKey, "openid": openid, "anonymous_openid": "", "unionid": UnionID(body.Code)}
	e.spoil(body.Code, data)
	writeDouyin(w, data)
}

// douyinToken serves POST /api/apps/v2/token, the app's access_token.
func (e *Engine) douyinToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AppID     string `json:"appid"`
		Secret    string `json:"secret"`
		GrantType string `json:"grant_type"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if f, ok := e.douyinApp(body.AppID, body.Secret); !ok {
		writeDouyinFailure(w, f)
		return
	}
	if body.GrantType != "client_credential" {
		writeDouyinFailure(w, douyinFailure{40020, "bad grant_type"})
		return
	}
	writeDouyin(w, map[string]any{"access_token": e.mint(body.AppID), "expires_in": TokenExpiresIn})
}

// douyinClientToken serves POST open.douyin.com/oauth/client_token/. Its
// answer has no err_no: data.error_code says what went wrong.
func (e *Engine) douyinClientToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		GrantType    string `json:"grant_type"`
		ClientKey    string `json:"client_key"`
		ClientSecret string `json:"client_secret"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	answer := func(errorCode int, description, token string) {
		data := map[string]any{"error_code": errorCode, "description": description}
		message := "error"
		if errorCode == 0 {
			data["access_token"], data["expires_in"], message = token, TokenExpiresIn, "success"
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": data, "message": message})
	}
	if f, ok := e.checkApp(body.ClientKey, body.ClientSecret); !ok {
		if f == failInvalidAppID {
			answer(10003, "client_key does not exist", "")
		} else {
			answer(10013, "client_key or client_secret is wrong", "")
		}
		return
	}
	if body.GrantType != "client_credential" || body.ClientKey == "" {
		answer(10002, "bad parameters", "")
		return
	}
	answer(0, "", clientTokenPrefix+e.mint(body.ClientKey))
}

// douyinTextCheck serves POST /api/v2/tags/text/antidirt: the token in the
// X-Token header, the texts as tasks; a hit for each risky one.
func (e *Engine) douyinTextCheck(w http.ResponseWriter, r *http.Request) {
	appid, check := e.inspectToken(r.Header.Get("X-Token"))
	if check != tokenOK {
		writeJSON(w, http.StatusOK, map[string]any{"error_id": "sandbox", "code": 401, "message": "[app token sign fail] bad token"})
		return
	}
	var body struct {
		Tasks []struct {
			Content string `json:"content"`
		} `json:"tasks"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if len(body.Tasks) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"error_id": "sandbox", "code": 400, "message": "tasks is empty"})
		return
	}
	data := make([]map[string]any, len(body.Tasks))
	for i, task := range body.Tasks {
		e.record(func(rec *recording) {
			rec.textChecks = append(rec.textChecks, TextCheck{AppID: appid, Content: task.Content})
		})
		data[i] = map[string]any{"code": 0, "msg": "", "task_id": "sandbox", "data_id": nil, "cached": false,
			"predicts": []map[string]any{{"prob": 0, "hit": isRiskyText(task.Content), "target": nil, "model_name": "short_content_antidirt"}}}
	}
	writeJSON(w, http.StatusOK, map[string]any{"log_id": "sandbox", "data": data})
}

// douyinImageCheck serves POST /api/apps/censor/image (v2): app_id,
// access_token and the image as base64 image_data, all in the JSON body.
func (e *Engine) douyinImageCheck(w http.ResponseWriter, r *http.Request) {
	var body struct {
		AppID       string `json:"app_id"`
		AccessToken string `json:"access_token"`
		ImageData   string `json:"image_data"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if _, check := e.inspectToken(body.AccessToken); check != tokenOK {
		writeJSON(w, http.StatusOK, map[string]any{"error": 2, "message": "access_token check failed"})
		return
	}
	image, err := base64.StdEncoding.DecodeString(body.ImageData)
	if err != nil || len(image) == 0 || body.AppID == "" {
		writeJSON(w, http.StatusOK, map[string]any{"error": 1, "message": "bad parameters"})
		return
	}
	e.record(func(rec *recording) { rec.imageChecks = append(rec.imageChecks, image) })
	writeJSON(w, http.StatusOK, map[string]any{"error": 0, "message": "image censor success",
		"predicts": []map[string]any{{"model_name": "porn", "hit": isRiskyImage(image)}, {"model_name": "sensitive_flag", "hit": false}}})
}

// phoneAnswer is an answer of get_phonenumber_info, whose text field is
// err_msg.
func phoneAnswer(errNo int, msg string) map[string]any {
	return map[string]any{"err_no": errNo, "err_msg": msg, "log_id": "sandbox"}
}

// douyinPhone serves POST open.douyin.com/api/apps/v1/get_phonenumber_info/:
// the client_token in the access-token header, the button's code in the
// body; the number, as JSON encrypted with the app's public key (RSA,
// PKCS #1 v1.5), in data.
func (e *Engine) douyinPhone(w http.ResponseWriter, r *http.Request) {
	token, isClientToken := strings.CutPrefix(r.Header.Get("access-token"), clientTokenPrefix)
	appid, check := e.inspectToken(token)
	switch {
	case check == tokenOld:
		writeJSON(w, http.StatusOK, phoneAnswer(28001008, "access_token expired"))
		return
	case check != tokenOK || !isClientToken:
		writeJSON(w, http.StatusOK, phoneAnswer(28001003, "access_token is invalid"))
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	bad := phoneAnswer(28005187, "code is invalid or expired")
	switch code := body.Code; {
	case code == "", code == CodeInvalid, code == CodeUsed:
		writeJSON(w, http.StatusOK, bad)
		return
	case e.opts.Scripted && code == CodeBusy:
		writeJSON(w, http.StatusOK, phoneAnswer(-1, "internal error"))
		return
	case e.opts.Scripted && code == CodeLimited:
		writeLimited(w)
		return
	}
	if e.opts.Stateful && !e.redeem(e.phoneUsed, appid, body.Code) {
		writeJSON(w, http.StatusOK, bad)
		return
	}
	plain, _ := json.Marshal(map[string]any{ // plain data: cannot fail
		"phoneNumber": PhoneNumber, "purePhoneNumber": PhoneNumber, "countryCode": PhoneCountryCode,
		"watermark": map[string]any{"appid": appid, "timestamp": time.Now().Unix()},
	})
	data, err := encryptPKCS1v15(e.appPublicKey(appid), plain)
	if err != nil {
		http.Error(w, "fakeplatform: cannot encrypt the phone number", http.StatusInternalServerError)
		return
	}
	answer := phoneAnswer(0, "")
	answer["data"] = data
	writeJSON(w, http.StatusOK, answer)
}

// clientTokenPrefix starts every client_token, as Douyin's do.
const clientTokenPrefix = "clt."

// encryptPKCS1v15 encrypts plain block by block (as much as one RSA block
// of the key holds) and base64-encodes the whole, as Douyin does.
func encryptPKCS1v15(pub *rsa.PublicKey, plain []byte) (string, error) {
	chunk := pub.Size() - 11
	var ct []byte
	for len(plain) > 0 {
		n := min(chunk, len(plain))
		block, err := rsa.EncryptPKCS1v15(nil, pub, plain[:n])
		if err != nil {
			return "", err
		}
		ct = append(ct, block...)
		plain = plain[n:]
	}
	return base64.StdEncoding.EncodeToString(ct), nil
}
