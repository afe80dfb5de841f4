package fakeplatform

import (
	"net/http"
	"slices"
)

// tokenState is what an issued access_token answers.
type tokenState int

const (
	tokenValid   tokenState = iota
	tokenExpired            // errcode 42001
	tokenRevoked            // errcode 40001
)

type issuedToken struct {
	appid string
	state tokenState
}

// stableToken serves WeChat's POST /cgi-bin/stable_token.
func (e *Engine) stableToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	e.issueToken(w, body.AppID, body.Secret, body.GrantType)
}

// qqToken serves QQ's GET /api/getToken.
func (e *Engine) qqToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	e.issueToken(w, q.Get("appid"), q.Get("secret"), q.Get("grant_type"))
}

// issueToken checks the credentials and answers the app's token: the
// sandbox's AccessToken, or a fresh random one.
func (e *Engine) issueToken(w http.ResponseWriter, appid, secret, grantType string) {
	if f, ok := e.checkApp(appid, secret); !ok {
		writeFailure(w, f)
		return
	}
	switch {
	case appid == "":
		writeFailure(w, failInvalidAppID)
		return
	case grantType != "client_credential":
		writeFailure(w, failGrantType)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": e.mint(appid), "expires_in": TokenExpiresIn})
}

// mint is a new access_token of appid: the sandbox's AccessToken, or a
// fresh random one that a stateful engine remembers.
func (e *Engine) mint(appid string) string {
	if !e.opts.Stateful {
		return AccessToken(appid)
	}
	token := randomToken()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.tokens[token] = &issuedToken{appid: appid}
	e.rec.tokens = append(e.rec.tokens, token)
	return token
}

// tokenCheck is what is wrong with the access_token a call carried.
type tokenCheck int

const (
	tokenOK      tokenCheck = iota
	tokenMissing            // the sandbox got none
	tokenBad                // not issued, or revoked (stateful)
	tokenOld                // expired (stateful)
)

// inspectToken returns the app token was issued to ("" in the sandbox,
// which cannot tell an app from its token) and what is wrong with it: the
// sandbox takes any token, a stateful engine only those it issued and that
// are still valid.
func (e *Engine) inspectToken(token string) (appid string, check tokenCheck) {
	if !e.opts.Stateful {
		if token == "" {
			return "", tokenMissing
		}
		return "", tokenOK
	}
	t, found := lookUp(e, e.tokens, token)
	switch {
	case !found, t.state == tokenRevoked:
		return "", tokenBad
	case t.state == tokenExpired:
		return "", tokenOld
	}
	return t.appid, tokenOK
}

// checkToken answers the errcode of r's access_token and reports false when
// it is missing (or, in a stateful engine, unknown, expired or revoked);
// else it returns the app the token was issued to ("" in the sandbox, which
// cannot tell an app from its token).
func (e *Engine) checkToken(w http.ResponseWriter, r *http.Request) (appid string, ok bool) {
	appid, check := e.inspectToken(r.URL.Query().Get("access_token"))
	switch check {
	case tokenMissing:
		writeFailure(w, failNoToken)
	case tokenBad:
		writeFailure(w, failBadToken)
	case tokenOld:
		writeFailure(w, failExpiredToken)
	default:
		return appid, true
	}
	return "", false
}

// lookUp returns a copy of what a stateful engine issued token for (an app
// or a web token), and whether it did.
func lookUp[T any](e *Engine, issued map[string]*T, token string) (T, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var v T
	p, found := issued[token]
	if found {
		v = *p
	}
	return v, found
}

// tokenRefusal is the answer to a token that was not issued (found false)
// or is no longer valid, and true; app and web tokens alike.
func tokenRefusal(found bool, state tokenState) (failure, bool) {
	switch {
	case !found, state == tokenRevoked:
		return failBadToken, true
	case state == tokenExpired:
		return failExpiredToken, true
	}
	return failure{}, false
}

// ExpireTokens makes every access_token a stateful engine issued so far (app
// and web tokens) answer errcode 42001 (expired) from now on. Tokens issued
// later are valid.
func (e *Engine) ExpireTokens() {
	e.setTokens(tokenExpired)
}

// RevokeTokens makes every access_token a stateful engine issued so far (app
// and web tokens) answer errcode 40001 (invalid, as after someone else's
// forced refresh) from now on.
func (e *Engine) RevokeTokens() {
	e.setTokens(tokenRevoked)
}

func (e *Engine) setTokens(state tokenState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.tokens {
		t.state = state
	}
	for _, g := range e.webTokens {
		g.state = state
	}
}

// Tokens is every access_token a stateful engine issued, in order.
func (e *Engine) Tokens() []string {
	return recorded(e, func(rec *recording) []string { return slices.Clone(rec.tokens) })
}
