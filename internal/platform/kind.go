// Package platform is a small client for the server APIs of the mini-program
// platforms that wxauth needs: WeChat and QQ, Douyin, Alipay and Baidu. It
// speaks plain HTTP (no SDK; Alipay's RSA2 signatures with the standard
// library's crypto/rsa) and turns every failure into
// a *Error whose code maps onto the plugin's error contract and whose text is
// safe to show: it never contains the app secret, an access_token, a
// session_key, a phone number or a request URL.
//
// Client makes single calls: code2Session (each platform's own exchange
// of a login code), stable_token, and the web login's
// code exchange and profile (WebAccessToken, WebUserInfo), whose authorize
// page address AuthorizeURL builds. Service, meant to live as long as the
// node, calls the APIs that need an app's access_token (content checks, phone
// numbers) and keeps those tokens cached.
package platform

import (
	"fmt"
	"strings"
)

// Kind is the platform an app belongs to. It decides the API base URL and the
// X-WX-SOURCE value sent upstream. The zero Kind behaves as WeChat, the
// Caddyfile's default.
type Kind string

const (
	WeChat    Kind = "wechat"     // WeChat mini program
	QQ        Kind = "qq"         // QQ mini program
	WeChatWeb Kind = "wechat-web" // official-account pages inside WeChat (OAuth2 web login)
	WeChatQR  Kind = "wechat-qr"  // website QR login through the Open Platform
	Douyin    Kind = "douyin"     // Douyin (ByteDance, Toutiao) mini program
	Alipay    Kind = "alipay"     // Alipay mini program
	Baidu     Kind = "baidu"      // Baidu smart program
)

// kinds lists the valid kinds in the order error messages present them.
var kinds = []Kind{WeChat, QQ, WeChatWeb, WeChatQR, Douyin, Alipay, Baidu}

const (
	weChatAPIBase = "https://api.weixin.qq.com"
	qqAPIBase     = "https://api.q.qq.com"
	// Douyin's mini-program APIs (login, access_token, content checks);
	// its newer ones (client_token, phone numbers) are on douyinOpenBase.
	douyinAPIBase  = "https://developer.toutiao.com"
	douyinOpenBase = "https://open.douyin.com"
	// Alipay's OpenAPI gateway, at /gateway.do.
	alipayAPIBase = "https://openapi.alipay.com"
	// Baidu's login API; its access_token and content checks are on
	// baiduOpenBase.
	baiduAPIBase  = "https://spapi.baidu.com"
	baiduOpenBase = "https://openapi.baidu.com"
)

// ParseKind parses a configuration value (case-insensitive) into a Kind.
func ParseKind(s string) (Kind, error) {
	for _, k := range kinds {
		if strings.EqualFold(s, string(k)) {
			return k, nil
		}
	}
	valid := make([]string, len(kinds))
	for i, k := range kinds {
		valid[i] = string(k)
	}
	return "", fmt.Errorf("unknown platform %q; valid values: %s", s, strings.Join(valid, ", "))
}

// DefaultAPIBase is the platform's API base URL, without a trailing slash.
// It returns "" for an unknown Kind.
func (k Kind) DefaultAPIBase() string {
	switch k {
	case WeChat, WeChatWeb, WeChatQR, "":
		return weChatAPIBase
	case QQ:
		return qqAPIBase
	case Douyin:
		return douyinAPIBase
	case Alipay:
		return alipayAPIBase
	case Baidu:
		return baiduAPIBase
	}
	return ""
}

// host names a platform's second API host, for the APIs that are not on
// its DefaultAPIBase. An app's api_base overrides every host alike: a test
// double or a proxy serves them all.
type host int

const (
	mainHost host = iota // DefaultAPIBase
	openHost             // douyinOpenBase, baiduOpenBase
)

// baseFor is the base URL of h for app, without a trailing slash.
func (a App) baseFor(h host) string {
	if a.APIBase != "" || h == mainHost {
		return a.apiBase()
	}
	switch a.Kind {
	case Douyin:
		return douyinOpenBase
	case Baidu:
		return baiduOpenBase
	}
	return a.apiBase()
}

// Source is the X-WX-SOURCE header value for users of this kind of app. The
// values are the ones WeChat Cloud Run injects, so apps written for it run
// unchanged. It returns "" for an unknown Kind.
func (k Kind) Source() string {
	switch k {
	case WeChat, "":
		return "wechat-miniprogram"
	case QQ:
		return "qq-miniprogram"
	case WeChatWeb, WeChatQR:
		return "wechat-web"
	case Douyin:
		return "douyin-miniprogram"
	case Alipay:
		return "alipay-miniprogram"
	case Baidu:
		return "baidu-miniprogram"
	}
	return ""
}

// Name is the platform's name in messages: "Douyin", "Alipay", ...
func (k Kind) Name() string {
	switch k {
	case QQ:
		return "QQ"
	case Douyin:
		return "Douyin"
	case Alipay:
		return "Alipay"
	case Baidu:
		return "Baidu"
	}
	return "WeChat"
}

// ChecksImages reports whether the platform has an image content check
// (for uploaded avatars). Alipay has none for mini programs, and the shape
// of Baidu's is not documented well enough to rely on; their apps' avatars
// are stored unchecked, and the gateway says so at startup.
func (k Kind) ChecksImages() bool {
	return k != Alipay && k != Baidu
}

// HasEncryptedUserData reports whether the platform's legacy encrypted
// user data (getUserInfo's encryptedData and iv) is WeChat's scheme
// (AES-128-CBC under the session_key, with a watermark), which the gateway
// decrypts. Douyin's is; Alipay has no session_key, and Baidu's scheme is
// its own (AES-192, a different framing).
func (k Kind) HasEncryptedUserData() bool {
	return k != Alipay && k != Baidu
}

// IsWeb reports whether apps of this kind log in through the browser OAuth2
// flow (an authorize page, then /sns/oauth2/access_token) rather than with a
// mini program's login code.
func (k Kind) IsWeb() bool {
	return k == WeChatWeb || k == WeChatQR
}

// loginFunction is the front-end call that issues a login code, named in
// messages that tell the client what to do next.
func (k Kind) loginFunction() string {
	switch k {
	case QQ:
		return "qq.login"
	case Douyin:
		return "tt.login"
	case Alipay:
		return "my.getAuthCode"
	case Baidu:
		return "swan.getLoginCode"
	}
	return "wx.login"
}
