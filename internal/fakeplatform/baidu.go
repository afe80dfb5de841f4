package fakeplatform

import (
	"io"
	"net/http"
)

// Baidu's answers: OAuth-style errors (error, error_description) from the
// login and token APIs; errno/msg, or error_code/error_msg at the gateway,
// from openapi.baidu.com's REST APIs.

// writeBaiduOAuth answers an OAuth error. Baidu also sends an errno, whose
// values are not documented; the fake leaves it out.
func writeBaiduOAuth(w http.ResponseWriter, oauthError, description string) {
	writeJSON(w, http.StatusOK, map[string]string{"error": oauthError, "error_description": description})
}

// baiduApp answers credentials that a registered app (AddApp, by App Key)
// does not have, and reports whether it did.
func (e *Engine) baiduApp(w http.ResponseWriter, clientID, secret string) bool {
	if _, ok := e.checkApp(clientID, secret); !ok {
		writeBaiduOAuth(w, "invalid_client", "unknown client id or wrong secret")
		return true
	}
	return false
}

// baiduCode2Session serves POST /oauth/jscode2sessionkey: code, client_id
// (the App Key) and sk (the App Secret), as a form or in the query.
func (e *Engine) baiduCode2Session(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body) // read in full by ServeHTTP already
	form := formOf(r, body)
	appid, code := form.Get("client_id"), form.Get("code")
	if e.baiduApp(w, appid, form.Get("sk")) {
		e.rejected(code)
		return
	}
	switch e.codeFate(w, r, appid, code) {
	case fateAnswered:
		return
	case fateBusy:
		writeUnavailable(w) // Baidu documents no busy answer
		return
	case fateLimited:
		writeLimited(w)
		return
	case fateInvalid:
		writeBaiduOAuth(w, "invalid_grant", "invalid code")
		return
	}
	if appid == "" || code == "" {
		e.rejected(code)
		writeBaiduOAuth(w, "invalid_request", "missing code or client_id")
		return
	}
	openid, sessionKey := OpenID(appid, code), e.sessionKey(appid, code, 24)
	if !e.firstLogin(appid, code, openid, sessionKey) {
		writeBaiduOAuth(w, "invalid_grant", "code has been used") // a code works once
		return
	}
	answer := map[string]string{"openid": openid, "session_key": sessionKey}
	if e.opts.Scripted && code == CodeBadOpenID {
		answer["openid"] = "../../etc"
	}
	writeJSON(w, http.StatusOK, answer)
}

// baiduToken serves openapi.baidu.com's POST /oauth/2.0/token
// (grant_type client_credentials, client_id, client_secret, scope).
func (e *Engine) baiduToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appid := q.Get("client_id")
	if e.baiduApp(w, appid, q.Get("client_secret")) {
		return
	}
	if q.Get("grant_type") != "client_credentials" || appid == "" {
		writeBaiduOAuth(w, "unsupported_grant_type", "grant_type must be client_credentials")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": e.mint(appid), "expires_in": TokenExpiresIn,
		"scope": q.Get("scope"), "refresh_token": "", "session_key": "", "session_secret": ""})
}

// baiduTextCheck serves openapi.baidu.com's POST
// /rest/2.0/smartapp/riskDetection/v2/syncCheckText?access_token=: a risky
// text's result has errno 1.
func (e *Engine) baiduTextCheck(w http.ResponseWriter, r *http.Request) {
	appid, check := e.inspectToken(r.URL.Query().Get("access_token"))
	switch check {
	case tokenOK:
	case tokenOld:
		writeJSON(w, http.StatusOK, map[string]any{"error_code": 111, "error_msg": "Access token expired"})
		return
	default:
		writeJSON(w, http.StatusOK, map[string]any{"error_code": 110, "error_msg": "Access token invalid or no longer valid"})
		return
	}
	var body struct {
		Content string   `json:"content"`
		Type    []string `json:"type"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if body.Content == "" || len(body.Type) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"errno": 400, "msg": "content and type are required"})
		return
	}
	e.record(func(rec *recording) {
		rec.textChecks = append(rec.textChecks, TextCheck{AppID: appid, Content: body.Content})
	})
	var res []map[string]any
	for _, t := range body.Type {
		errno, msg := 0, ""
		if t == "risk" && isRiskyText(body.Content) {
			errno, msg = 1, "risky content"
		}
		res = append(res, map[string]any{"type": t, "errno": errno, "msg": msg})
	}
	writeJSON(w, http.StatusOK, map[string]any{"errno": 0, "msg": "success", "data": map[string]any{"res": res, "retrieveId": "sandbox"}})
}
