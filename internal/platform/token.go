package platform

import (
	"context"
	"net/url"
	"time"
)

// maxTokenLen bounds an access_token; real ones are about 160 bytes.
const maxTokenLen = 1024

// maxTokenLifetime caps the expires_in a token answer may claim. It is the
// platform's documented maximum (7200 s): a larger claim is garbage or a
// rule change, and assuming less only costs an early, harmless refetch.
const maxTokenLifetime = 2 * time.Hour

// tokenAnswer is the success body of /cgi-bin/stable_token and of QQ's
// /api/getToken.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"` // seconds
}

// stableTokenBody is the JSON body of /cgi-bin/stable_token. It is a struct,
// not a map, so force_refresh is always sent, false included.
type stableTokenBody struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// tokenFailures are what errcodes mean when fetching a token. On the token
// APIs 40001 means a wrong secret, not a stale token.
var tokenFailures = map[int]failure{
	40001: {Unavailable, "the platform rejected the app's credentials (errcode 40001); " +
		"the operator should check the appid and secret"},
	40164: {Unavailable, "the platform refused this server's IP address (errcode 40164); " +
		"the operator should add it to the app's IP whitelist in the platform's console"},
	45011: {RateLimited, "the platform is limiting how often the app's access_token can be fetched; wait a minute and try again"},
}

// tokenAPI is the name errors give the token API of app's platform.
func tokenAPI(app App) string {
	if app.Kind == QQ {
		return "getToken"
	}
	return "stable_token"
}

// StableToken fetches an app's access_token and how long it stays usable.
// Most callers want Service.AccessToken, which caches it.
//
// WeChat apps (of every WeChat kind) use /cgi-bin/stable_token, never the
// classic /cgi-bin/token: each fetch of the classic one invalidates the
// previous token, so several nodes fetching it knock each other out. In
// stable_token's normal mode (forceRefresh false) every caller gets the same
// token until shortly before it expires. forceRefresh true invalidates the
// token every other node is using, and the platform allows it only a few
// times a day: it is for an operator's tool, not for routine use.
//
// QQ apps use /api/getToken, which has no force mode: forceRefresh is ignored.
func (c *Client) StableToken(ctx context.Context, app App, forceRefresh bool) (token string, expiresIn time.Duration, err error) {
	api := tokenAPI(app)
	req := request{api: api, failures: tokenFailures}
	if app.Kind == QQ {
		req.path = "/api/getToken"
		req.query = url.Values{
			"grant_type": {"client_credential"},
			"appid":      {app.AppID},
			"secret":     {app.Secret},
		}
	} else {
		req.path = "/cgi-bin/stable_token"
		req = jsonRequest(req, stableTokenBody{
			GrantType:    "client_credential",
			AppID:        app.AppID,
			Secret:       app.Secret,
			ForceRefresh: forceRefresh,
		})
	}
	var answer tokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return "", 0, err
	}

	// The token goes into URLs and the cache: a success that does not look
	// like one is garbage.
	return checkedToken(api, answer.AccessToken, answer.ExpiresIn)
}

// validToken reports whether s is a plausible access_token: non-empty, at
// most maxTokenLen bytes of [A-Za-z0-9._~+/=-].
func validToken(s string) bool {
	if s == "" || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == '-') {
			return false
		}
	}
	return true
}
