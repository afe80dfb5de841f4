// Package platform is a small client for the WeChat and QQ server APIs that
// wxauth needs. It speaks plain HTTP+JSON (no SDK) and turns every failure into
// a *Error whose code maps onto the plugin's error contract and whose text is
// safe to show: it never contains the app secret, an access_token, a
// session_key, a phone number or a request URL.
//
// Client makes single calls: code2Session, stable_token, and the web login's
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
)

// kinds lists the valid kinds in the order error messages present them.
var kinds = []Kind{WeChat, QQ, WeChatWeb, WeChatQR}

const (
	weChatAPIBase = "https://api.weixin.qq.com"
	qqAPIBase     = "https://api.q.qq.com"
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
	}
	return ""
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
	}
	return ""
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
	if k == QQ {
		return "qq.login"
	}
	return "wx.login"
}
