package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// DefaultOpenBase is where WeChat's web authorize pages are, for
// AuthorizeURL's openBase "".
const DefaultOpenBase = "https://open.weixin.qq.com"

// The scopes of the web login.
const (
	// ScopeBase (wechat-web): the openid only, without asking the user.
	// /sns/userinfo refuses its token (errcode 48001).
	ScopeBase = "snsapi_base"
	// ScopeUserInfo (wechat-web): WeChat asks the user, then /sns/userinfo
	// answers the profile.
	ScopeUserInfo = "snsapi_userinfo"
	// ScopeLogin (wechat-qr, always): website QR login; /sns/userinfo
	// answers the profile.
	ScopeLogin = "snsapi_login"
)

// The names errors give the web APIs.
const (
	webTokenAPI  = "oauth2_access_token"
	userInfoAPI  = "userinfo"
	authorizeAPI = "authorize"
)

// maxScopeLen bounds the scope an exchange answer may carry; real ones are
// one scope name, at most a few joined by commas.
const maxScopeLen = 128

// A web login code works once and the browser cannot get a new one on its
// own: every failure a fresh login can fix says so.
const restartWebLogin = "start the web login again"

// WebSession is what /sns/oauth2/access_token returns for a web login code.
// The refresh_token of the answer is not kept: wxauth never needs the user's
// web token past the login, and a secret not kept cannot leak.
//
// Its String, GoString and Format methods leave AccessToken out, and so does
// encoding/json (the field is tagged "-"), so a WebSession passed to a logger
// (fmt, zap, slog) does not reveal the token by accident; read the field to
// use it.
type WebSession struct {
	OpenID  string
	UnionID string // "" unless the app is bound to an Open Platform account
	// AccessToken is the user's web access_token: a secret, only for
	// WebUserInfo (it is not the app's access_token).
	AccessToken string `json:"-"`
	Scope       string // e.g. "snsapi_base", "snsapi_userinfo", "snsapi_login"
}

// String shows everything but the access_token:
// "web session(openid=o..., unionid=u..., scope=snsapi_userinfo)".
func (ws WebSession) String() string {
	var b strings.Builder
	b.WriteString("web session(openid=")
	b.WriteString(ws.OpenID)
	if ws.UnionID != "" {
		b.WriteString(", unionid=")
		b.WriteString(ws.UnionID)
	}
	b.WriteString(", scope=")
	b.WriteString(ws.Scope)
	b.WriteString(")")
	return b.String()
}

// GoString is for %#v; it leaves the access_token out like String.
func (ws WebSession) GoString() string {
	return "platform." + ws.String()
}

// Format makes every fmt verb print String's form (%x or %+v would
// otherwise print the fields, the token included).
func (ws WebSession) Format(f fmt.State, verb rune) { formatMasked(f, verb, ws) }

// LogValue leaves the access_token out of log/slog output, JSON handlers
// included.
func (ws WebSession) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("openid", ws.OpenID),
		slog.String("unionid", ws.UnionID),
		slog.String("scope", ws.Scope),
	)
}

// ProfileGranted reports whether the session's scope lets WebUserInfo read
// the user's profile: snsapi_userinfo or snsapi_login, alone or in a
// comma-separated list. With snsapi_base the platform refuses (48001).
func (ws WebSession) ProfileGranted() bool {
	for s := range strings.SplitSeq(ws.Scope, ",") {
		if s = strings.TrimSpace(s); s == ScopeUserInfo || s == ScopeLogin {
			return true
		}
	}
	return false
}

// webTokenAnswer is the success body of /sns/oauth2/access_token. Its
// refresh_token and expires_in are not decoded: see WebSession.
type webTokenAnswer struct {
	AccessToken string `json:"access_token"`
	OpenID      string `json:"openid"`
	UnionID     string `json:"unionid"`
	Scope       string `json:"scope"`
}

// webCodeFailures are /sns/oauth2/access_token's own errcodes.
var webCodeFailures = map[int]failure{
	40029: {InvalidCode, "the web login code is invalid or expired; " + restartWebLogin},
	// Reloading the callback page, or the browser's back button, sends the
	// spent code again: the usual way to get here.
	40163: {InvalidCode, "the web login code was already used (a code works once, so reloading the callback page fails); " + restartWebLogin},
	41008: {InvalidCode, "no web login code reached the platform; " + restartWebLogin},
	40226: {LoginBlocked, "the platform blocked this user's login as high-risk; the user cannot log in for now"},
	45011: {RateLimited, "the platform is limiting how often this user can log in; wait a minute and " + restartWebLogin},
	// The exchange sends no access_token: here 40001 is about the secret,
	// as on the token APIs.
	40001: {Unavailable, "the platform rejected the app's credentials (errcode 40001); " +
		"the operator should check the appid and secret"},
}

// WebAccessToken exchanges the code a web authorize page sent to the callback
// (official-account pages, wechat-web; website QR login, wechat-qr) for the
// user's identity and web access_token.
//
// A code is single-use: after any failure, the browser must go through the
// authorize page again. Only web apps have web logins: another Kind gets
// Unsupported, without a call.
func (c *Client) WebAccessToken(ctx context.Context, app App, code string) (*WebSession, error) {
	const api = webTokenAPI
	if err := checkWebApp(api, app); err != nil {
		return nil, err
	}
	switch {
	case code == "":
		return nil, &Error{Code: InvalidCode, API: api,
			Message: "no web login code was sent (the platform sends it to the callback as code); " + restartWebLogin}
	case len(code) > maxCodeLen:
		return nil, &Error{Code: InvalidCode, API: api, Message: "the web login code is malformed; " + restartWebLogin}
	}

	req := request{
		api:  api,
		path: "/sns/oauth2/access_token",
		query: url.Values{
			"appid":      {app.AppID},
			"secret":     {app.Secret},
			"code":       {code},
			"grant_type": {"authorization_code"},
		},
		failures: webCodeFailures,
	}
	var answer webTokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}

	// A success that does not look like one is garbage: the ids end up in
	// headers, tokens and storage keys, the token in a URL. The code is
	// likely spent by now, hence "start again" rather than "try again".
	switch {
	case !valid.ID(answer.OpenID):
		return nil, unavailable(api, "the platform answered without a valid openid; "+restartWebLogin+" later")
	case answer.UnionID != "" && !valid.ID(answer.UnionID):
		return nil, unavailable(api, "the platform answered with a malformed unionid; "+restartWebLogin+" later")
	case !validToken(answer.AccessToken):
		return nil, unavailable(api, "the platform answered without a valid access_token; "+restartWebLogin+" later")
	case !validScope(answer.Scope):
		return nil, unavailable(api, "the platform answered with a malformed scope; "+restartWebLogin+" later")
	}
	return &WebSession{OpenID: answer.OpenID, UnionID: answer.UnionID, AccessToken: answer.AccessToken, Scope: answer.Scope}, nil
}

// WebUser is the profile /sns/userinfo returns (snsapi_userinfo and
// snsapi_login).
type WebUser struct {
	OpenID  string
	UnionID string // the answer's, else the WebSession's; "" when neither has one
	// Nickname is as WeChat sends it (emoji included), without control
	// characters or surrounding space, cut to 64 characters. It may be "".
	Nickname string
	// HeadImgURL is "" when the user has no avatar, or when the platform's
	// is not an absolute http(s) URL of at most 1024 bytes. WeChat often
	// sends http:// URLs; they are kept as sent.
	HeadImgURL string
}

// webUserAnswer is the success body of /sns/userinfo. sex, province, city,
// country and privilege are not decoded: wxauth does not use them.
type webUserAnswer struct {
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
}

// webUserFailures are /sns/userinfo's own errcodes. The token refused is the
// user's web token, not the app's: there is nothing to refresh, and its code
// is spent, so only a new login helps. (The common table's messages for
// 40001 and 42001 are about the app's token.)
var webUserFailures = map[int]failure{
	40001: {Unavailable, "the platform refused the web login's access_token (errcode 40001); " + restartWebLogin},
	40014: {Unavailable, "the platform refused the web login's access_token as malformed (errcode 40014); " + restartWebLogin},
	42001: {Unavailable, "the web login's access_token expired (errcode 42001); " + restartWebLogin},
	40003: {Unavailable, "the platform does not know this user for the web login's access_token (errcode 40003); " + restartWebLogin},
	48001: {Unavailable, "the web login's scope does not allow reading the profile (errcode 48001): " +
		"only snsapi_userinfo and snsapi_login do; the operator should check the app's scope"},
}

// WebUserInfo fetches the profile of the user a WebAccessToken exchange
// logged in. Only snsapi_userinfo and snsapi_login sessions may
// (WebSession.ProfileGranted); the platform refuses snsapi_base ones with
// 48001. The answer must be about ws's user: another openid or unionid is
// garbage.
func (c *Client) WebUserInfo(ctx context.Context, app App, ws *WebSession) (*WebUser, error) {
	const api = userInfoAPI
	if err := checkWebApp(api, app); err != nil {
		return nil, err
	}
	if ws == nil || !validToken(ws.AccessToken) || !valid.ID(ws.OpenID) {
		return nil, &Error{Code: Unsupported, API: api,
			Message: "there is no web login to read the profile of (no valid openid and access_token); " + restartWebLogin}
	}

	req := request{
		api:  api,
		path: "/sns/userinfo",
		query: url.Values{
			"openid": {ws.OpenID},
			"lang":   {"zh_CN"},
		},
		accessToken: ws.AccessToken, // sent as access_token, scrubbed from errmsg
		failures:    webUserFailures,
	}
	var answer webUserAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}

	switch {
	case answer.OpenID != ws.OpenID:
		return nil, unavailable(api, "the platform answered with another user's profile (the openid differs); "+restartWebLogin+" later")
	case answer.UnionID != "" && !valid.ID(answer.UnionID):
		return nil, unavailable(api, "the platform answered with a malformed unionid; "+restartWebLogin+" later")
	case answer.UnionID != "" && ws.UnionID != "" && answer.UnionID != ws.UnionID:
		return nil, unavailable(api, "the platform answered with another unionid than the login's; "+restartWebLogin+" later")
	}
	unionID := answer.UnionID
	if unionID == "" {
		unionID = ws.UnionID
	}
	return &WebUser{
		OpenID:     answer.OpenID,
		UnionID:    unionID,
		Nickname:   valid.SanitizeNickname(answer.Nickname),
		HeadImgURL: headImgURL(answer.HeadImgURL),
	}, nil
}

// AuthorizeURL is where a browser is sent to log in to app. openBase ""
// means DefaultOpenBase; a path in it is kept (a proxy, the sandbox's page
// under the plugin's prefix).
//
//	wechat-web: {openBase}/connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=<scope>&state=<state>#wechat_redirect
//	wechat-qr:  {openBase}/connect/qrconnect?appid=&redirect_uri=&response_type=code&scope=snsapi_login&state=<state>#wechat_redirect
//
// The parameters are in exactly this order, which WeChat is known to insist
// on, and URL-encoded. For wechat-web, scope is snsapi_base (also for "") or
// snsapi_userinfo; for wechat-qr it is ignored (always snsapi_login).
// redirectURI must be an absolute http(s) URL; state must be 1 to 128 bytes
// of [A-Za-z0-9], as WeChat requires, and should be unguessable and
// single-use (it is what stops login CSRF).
//
// Errors are *Error: Unsupported for a non-web app or a bad scope,
// redirectURI or state (a caller's mistake), Unavailable for a bad openBase
// (the operator's).
func AuthorizeURL(openBase string, app App, scope, redirectURI, state string) (string, error) {
	const api = authorizeAPI
	var path string
	switch app.Kind {
	case WeChatWeb:
		path = "/connect/oauth2/authorize"
		switch scope {
		case "":
			scope = ScopeBase
		case ScopeBase, ScopeUserInfo:
		default:
			return "", &Error{Code: Unsupported, API: api,
				Message: "a wechat-web app's scope must be snsapi_base or snsapi_userinfo; the operator should fix the app's scope"}
		}
	case WeChatQR:
		path = "/connect/qrconnect"
		scope = ScopeLogin
	default:
		return "", &Error{Code: Unsupported, API: api,
			Message: fmt.Sprintf("app %s is not a web app (its platform is %s): only wechat-web and wechat-qr apps log in through an authorize page", app.AppID, kindName(app.Kind))}
	}
	if app.AppID == "" {
		return "", &Error{Code: Unsupported, API: api, Message: "the app has no appid; the operator should fix the app's configuration"}
	}
	if !valid.State(state) {
		return "", &Error{Code: Unsupported, API: api,
			Message: fmt.Sprintf("the web login state must be 1 to %d letters and digits", valid.MaxStateLength)}
	}
	if !absoluteHTTPURL(redirectURI) {
		return "", &Error{Code: Unsupported, API: api, Message: "the web login's redirect_uri must be an absolute http or https URL"}
	}
	base, ok := parseOpenBase(openBase)
	if !ok {
		return "", unavailable(api, "the authorize page base URL is not an absolute http or https URL without a query; the operator should fix open_base")
	}

	// Built by hand, not with url.Values.Encode, which sorts the keys.
	var b strings.Builder
	b.WriteString(base)
	b.WriteString(path)
	b.WriteString("?appid=")
	b.WriteString(url.QueryEscape(app.AppID))
	b.WriteString("&redirect_uri=")
	b.WriteString(url.QueryEscape(redirectURI))
	b.WriteString("&response_type=code&scope=")
	b.WriteString(scope)
	b.WriteString("&state=")
	b.WriteString(state) // letters and digits: nothing to escape
	b.WriteString("#wechat_redirect")
	return b.String(), nil
}

// checkWebApp refuses apps that have no web login, before any call.
func checkWebApp(api string, app App) *Error {
	if app.Kind.IsWeb() {
		return nil
	}
	return &Error{Code: Unsupported, API: api,
		Message: fmt.Sprintf("app %s is not a web app (its platform is %s): only wechat-web and wechat-qr apps have web logins", app.AppID, kindName(app.Kind))}
}

// kindName is a Kind as configured, the zero Kind being the default wechat.
func kindName(k Kind) string {
	if k == "" {
		return string(WeChat)
	}
	return string(k)
}

// parseOpenBase returns openBase ("" meaning DefaultOpenBase) without a
// trailing slash, and whether it is an absolute http(s) URL that a path and
// query can be appended to.
func parseOpenBase(openBase string) (string, bool) {
	if openBase == "" {
		openBase = DefaultOpenBase
	}
	u, err := url.Parse(openBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(openBase, "#") {
		return "", false
	}
	return strings.TrimRight(openBase, "/"), true
}

// absoluteHTTPURL reports whether s is an absolute http(s) URL with a host
// and no credentials or whitespace.
func absoluteHTTPURL(s string) bool {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil
}

// validScope reports whether s is a plausible scope: at most maxScopeLen
// bytes of [A-Za-z0-9_,]. It may be empty: the session then has no
// profile (ProfileGranted is false).
func validScope(s string) bool {
	if len(s) > maxScopeLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == ',') {
			return false
		}
	}
	return true
}

// headImgURL keeps an avatar URL that passes the profile rules, and drops
// anything else: it goes upstream in X-WX-AVATAR and into pages, and a
// profile without the picture beats a failed login.
func headImgURL(s string) string {
	if valid.AvatarURL(s) != nil {
		return ""
	}
	return s
}
