package fakeplatform

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The codes that simulate platform failures, in every engine.
const (
	CodeInvalid = "invalid"
	CodeUsed    = "used"
	CodeBlocked = "blocked"
	CodeBusy    = "busy"
	CodeLimited = "limited"
)

// The scripted codes of Options.Scripted.
const (
	CodeBusyOnce  = "busyonce"
	CodeQuota     = "quota"
	CodeHTTP500   = "http500"
	CodeGarbage   = "garbage"
	CodeBadOpenID = "badopenid"
	CodeBadKey    = "badkey"
	CodeNoUnion   = "nounion"
	CodeSlow      = "slow"
)

// TokenExpiresIn is the expires_in, in seconds, of every access_token, the
// platform's usual value.
const TokenExpiresIn = 7200

// derivationPrefix starts every hashed input. With the purpose label that
// follows it ("openid", "unionid", "session_key"), it keeps the values
// independent of one another and of any other use of SHA-256 on codes.
const derivationPrefix = "wxauth-sandbox|"

// derive hashes the prefix and parts joined by "|".
func derive(parts ...string) []byte {
	h := sha256.New()
	h.Write([]byte(derivationPrefix))
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte("|"))
		}
		h.Write([]byte(p))
	}
	return h.Sum(nil)
}

// derived is a derivation as base64url, cut to n characters.
func derived(n int, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString(derive(parts...))[:n]
}

// OpenID is the openid for code in app appid: 28 characters of
// [A-Za-z0-9_-] starting with "o", like a real one.
func OpenID(appid, code string) string {
	return "o" + derived(27, "openid", appid, code)
}

// UnionID is the unionid for code. It does not depend on the app, so one code
// is the same person in every app, as with an Open Platform account. It is 29
// characters of [A-Za-z0-9_-] starting with "u".
func UnionID(code string) string {
	return "u" + derived(28, "unionid", code)
}

// SessionKey is the sandbox session_key for code in app appid: standard
// base64 of 16 bytes, like a real one. (A stateful engine answers a random
// one.)
func SessionKey(appid, code string) string {
	return base64.StdEncoding.EncodeToString(derive("session_key", appid, code)[:16])
}

// AccessToken is the sandbox access_token of app appid. It does not depend on
// the secret or the time: a sandbox token never changes. (A stateful engine
// issues random ones.)
func AccessToken(appid string) string {
	return "sandbox-token-" + derived(32, "access_token", appid)
}

// webTokenPrefix starts every sandbox web access_token.
const webTokenPrefix = "sandbox-web-"

// WebAccessToken is the sandbox web access_token of code in app appid:
// "sandbox-web-" + base64url(appid) + "." + base64url(code) + "." + a check
// derived from both. It carries appid and code so /sns/userinfo can answer
// for the right user without state; the check only catches tokens that were
// mangled or made up (it is no secret: nothing in the sandbox is).
func WebAccessToken(appid, code string) string {
	return webTokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(appid)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(code)) + "." + webTokenCheck(appid, code)
}

func webTokenCheck(appid, code string) string {
	return derived(22, "web_access_token", appid, code)
}

// parseWebAccessToken returns the appid and code a WebAccessToken was issued
// for, and false for anything else.
func parseWebAccessToken(token string) (appid, code string, ok bool) {
	rest, found := strings.CutPrefix(token, webTokenPrefix)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	rawAppID, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	rawCode, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil || parts[2] != webTokenCheck(string(rawAppID), string(rawCode)) {
		return "", "", false
	}
	return string(rawAppID), string(rawCode), true
}

// webRefreshToken is the refresh_token of a sandbox web login. Nothing
// accepts it: wxauth never refreshes a web token.
func webRefreshToken(appid, code string) string {
	return "sandbox-web-refresh-" + derived(32, "web_refresh_token", appid, code)
}

// maxNicknameCode is the longest code that Nickname shows as it is.
const maxNicknameCode = 32

// Nickname is the sandbox nickname of the user of code: "Sandbox " + code
// when code is at most 32 bytes of printable characters, so a developer sees
// who they are, else "Sandbox " + 8 characters of UnionID(code).
func Nickname(code string) string {
	if code != "" && len(code) <= maxNicknameCode && utf8.ValidString(code) &&
		strings.IndexFunc(code, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return "Sandbox " + code
	}
	return "Sandbox " + UnionID(code)[1:9]
}

// WebNickname is the nickname /sns/userinfo answers for user with
// Options.Scripted: "Web " + user and an emoji, as real nicknames often have.
func WebNickname(user string) string {
	return "Web " + user + " 🌐"
}

// WebHeadImgURL is the avatar URL /sns/userinfo answers for user with
// Options.Scripted, shaped like WeChat's.
func WebHeadImgURL(user string) string {
	return "https://thirdwx.qlogo.cn/mmopen/" + url.PathEscape(user) + "/132"
}

// webCodeSeparator separates the user from the counter in the codes a
// stateful authorize page issues: "alice~3".
const webCodeSeparator = "~"

// WebUser is the user a stateful engine's web code logs in: code without the
// "~<n>" the authorize page adds.
func WebUser(code string) string {
	i := strings.LastIndex(code, webCodeSeparator)
	if i <= 0 || i == len(code)-1 {
		return code
	}
	for _, c := range code[i+1:] {
		if c < '0' || c > '9' {
			return code
		}
	}
	return code[:i]
}

// randomToken is a fresh access_token or refresh_token, shaped like WeChat's.
func randomToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(48))
}

// randomSessionKey is a fresh session_key: base64 of 16 random bytes.
func randomSessionKey() string {
	return base64.StdEncoding.EncodeToString(randomBytes(16))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails: crypto/rand crashes the program rather than return an error
	return b
}
