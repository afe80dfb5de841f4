package platform

import (
	"context"
	"encoding/base64"
	"net/url"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// maxCodeLen rejects absurd login codes without asking the platform; real
// codes are 32 characters.
const maxCodeLen = 256

// sessionKeyLen is the decoded size of a session_key: an AES-128 key.
const sessionKeyLen = 16

// Session is what code2Session returns.
type Session struct {
	OpenID     string
	UnionID    string // "" unless the app is bound to an Open Platform account
	SessionKey string // base64 of 16 bytes, exactly as the platform sent it
}

// code2SessionAnswer is the success body of /sns/jscode2session.
type code2SessionAnswer struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
}

// Code2Session exchanges a mini-program login code (from wx.login or qq.login)
// for the user's identity and session_key. WeChat and QQ share the path and
// the answer; only the base URL differs.
func (c *Client) Code2Session(ctx context.Context, app App, code string) (*Session, error) {
	const api = "code2session"
	login := app.Kind.loginFunction()
	switch {
	case code == "":
		return nil, &Error{Code: InvalidCode, API: api,
			Message: "no login code was sent; call " + login + " and post its code"}
	case len(code) > maxCodeLen:
		return nil, &Error{Code: InvalidCode, API: api,
			Message: "the login code is malformed; call " + login + " again and post the new code"}
	}

	req := request{
		api:  api,
		path: "/sns/jscode2session",
		query: url.Values{
			"appid":      {app.AppID},
			"secret":     {app.Secret},
			"js_code":    {code},
			"grant_type": {"authorization_code"},
		},
		failures: map[int]failure{
			40029: {InvalidCode, "the login code is invalid or expired; call " + login + " again and post the new code"},
			40163: {InvalidCode, "the login code was already used or has expired; call " + login + " again and post the new code"},
			40226: {LoginBlocked, "the platform blocked this user's login as high-risk; the user cannot log in for now"},
			45011: {RateLimited, "the platform is limiting how often this user can log in; wait a minute and try again"},
		},
	}
	var answer code2SessionAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}

	// A success that does not look like one is treated as garbage: these
	// values end up in headers, tokens and storage keys.
	switch {
	case !valid.ID(answer.OpenID):
		return nil, unavailable(api, "the platform answered without a valid openid; try again later")
	case answer.UnionID != "" && !valid.ID(answer.UnionID):
		return nil, unavailable(api, "the platform answered with a malformed unionid; try again later")
	case !validSessionKey(answer.SessionKey):
		return nil, unavailable(api, "the platform answered without a valid session_key; try again later")
	}
	return &Session{OpenID: answer.OpenID, UnionID: answer.UnionID, SessionKey: answer.SessionKey}, nil
}

// validSessionKey reports whether s is standard base64 of exactly 16 bytes.
func validSessionKey(s string) bool {
	key, err := base64.StdEncoding.DecodeString(s)
	return err == nil && len(key) == sessionKeyLen
}
