package platform

import (
	"context"
	"encoding/base64"
	"net/url"
	"slices"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// maxCodeLen rejects absurd login codes without asking the platform; real
// codes are 32 characters.
const maxCodeLen = 256

// sessionKeyLen is the decoded size of a session_key: an AES-128 key.
const sessionKeyLen = 16

// Session is what code2Session returns.
type Session struct {
	// OpenID is the user's id in the app: the openid, or for Alipay the
	// open_id or (older apps) the user_id, as IDType says.
	OpenID  string
	UnionID string // "" unless the app is bound to an Open Platform account
	// SessionKey is exactly as the platform sent it: base64 of 16 bytes
	// (WeChat, QQ, Douyin), of 24 (Baidu); "" for Alipay, which has none.
	SessionKey string
	// IDType is which of its ids Alipay gave as OpenID: IDTypeOpenID or
	// IDTypeUserID; "" on the other platforms (an openid).
	IDType string
}

// The Session.IDType values of Alipay apps.
const (
	IDTypeOpenID = "open_id" // the per-app id of new apps (openid mode)
	IDTypeUserID = "user_id" // the 2088... user id of apps from before openid
)

// code2SessionAnswer is the success body of /sns/jscode2session.
type code2SessionAnswer struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	SessionKey string `json:"session_key"`
}

// Code2Session exchanges a mini-program login code (from wx.login or qq.login,
// tt.login, my.getAuthCode, swan.getLoginCode) for the user's identity and
// session_key. WeChat and QQ share the path and the answer; only the base
// URL differs. Douyin, Alipay and Baidu have APIs of their own.
func (c *Client) Code2Session(ctx context.Context, app App, code string) (*Session, error) {
	const api = "code2session"
	if err := checkLoginCode(app.Kind, code); err != nil {
		return nil, err
	}
	switch app.Kind {
	case Douyin:
		return c.douyinCode2Session(ctx, app, code)
	case Alipay:
		return c.alipayOAuthToken(ctx, app, code)
	case Baidu:
		return c.baiduCode2Session(ctx, app, code)
	}
	login := app.Kind.loginFunction()

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

	return checkedSession(api, answer.OpenID, answer.UnionID, answer.SessionKey, sessionKeyLen)
}

// checkedSession is the Session of a code exchange's success, or the error
// for one that does not look like one, treated as garbage: its ids end up
// in headers, tokens and storage keys. The session_key must be standard
// base64 of one of keySizes bytes.
func checkedSession(api, openid, unionid, sessionKey string, keySizes ...int) (*Session, error) {
	if err := checkIdentity(api, openid, unionid); err != nil {
		return nil, err
	}
	if !validKeyOf(sessionKey, keySizes...) {
		return nil, unavailable(api, "the platform answered without a valid session_key; try again later")
	}
	return &Session{OpenID: openid, UnionID: unionid, SessionKey: sessionKey}, nil
}

// checkLoginCode refuses a code that cannot be one, without asking the
// platform.
func checkLoginCode(kind Kind, code string) *Error {
	const api = "code2session"
	login := kind.loginFunction()
	switch {
	case code == "":
		return &Error{Code: InvalidCode, API: api,
			Message: "no login code was sent; call " + login + " and post its code"}
	case len(code) > maxCodeLen:
		return &Error{Code: InvalidCode, API: api,
			Message: "the login code is malformed; call " + login + " again and post the new code"}
	}
	return nil
}

// validKeyOf reports whether s is standard base64 of one of the sizes.
func validKeyOf(s string, sizes ...int) bool {
	key, err := base64.StdEncoding.DecodeString(s)
	return err == nil && slices.Contains(sizes, len(key))
}

// checkIdentity refuses a success that does not look like one: its ids end
// up in headers, tokens and storage keys.
func checkIdentity(api, openid, unionid string) *Error {
	switch {
	case !valid.ID(openid):
		return unavailable(api, "the platform answered without a valid openid; try again later")
	case unionid != "" && !valid.ID(unionid):
		return unavailable(api, "the platform answered with a malformed unionid; try again later")
	}
	return nil
}
