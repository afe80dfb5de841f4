// Package sandbox is an in-process fake of the WeChat and QQ server APIs, for
// the plugin's sandbox mode, where no network call leaves the process.
//
// Identities are derived from the login code, so a developer can log in as
// "alice" from any device and always be the same user. A few codes simulate
// platform failures:
//
//	invalid  errcode 40029 (invalid code)
//	used     errcode 40163 (code already used)
//	blocked  errcode 40226 (high-risk user, login blocked)
//	busy     errcode -1 (system busy), every time
//	limited  errcode 45011 (frequency limit)
//
// Every other non-empty code logs in. Any secret is accepted.
//
// The APIs that need an access_token work too, for WeChat and QQ:
//
//	POST /cgi-bin/stable_token, GET /api/getToken
//	    any secret; AccessToken(appid), valid for TokenExpiresIn seconds
//	POST /wxa/msg_sec_check, POST /api/json/security/MsgSecCheck
//	    text containing RiskyMarker ("risky", any case) is risky: WeChat
//	    answers suggest "risky" with label RiskyLabel, QQ errcode 87014;
//	    other text passes
//	POST /wxa/img_sec_check, POST /api/json/security/ImgSecCheck
//	    a multipart file "media" whose bytes contain RiskyMarker (any case)
//	    gets errcode 87014; other images pass
//	POST /wxa/business/getuserphonenumber
//	    phone codes "invalid" and "used" get errcode 40029; any other
//	    non-empty code gets the fixed number PhoneNumber (country code
//	    PhoneCountryCode)
//
// Access tokens are only checked for being present (errcode 40001 when
// missing). Like login codes, phone codes can be used again and again.
//
// Web logins (wechat-web, wechat-qr) work the same way:
//
//	GET /connect/oauth2/authorize, GET /connect/qrconnect
//	    the authorize page (Authorize): it redirects straight back to
//	    redirect_uri with code and state, the code being the query
//	    parameter sandbox_user, or DefaultWebUser ("alice")
//	GET /sns/oauth2/access_token
//	    the failure codes above answer their errcode; any other non-empty
//	    code gets openid OpenID(appid, code) and unionid UnionID(code), the
//	    same person as the mini-program login with that code, scope
//	    WebScope (the exchange does not say which scope was asked for, and
//	    the sandbox grants everything), and access_token
//	    WebAccessToken(appid, code)
//	GET /sns/userinfo
//	    needs a WebAccessToken and the openid it was issued for (else
//	    40001, 40003); answers nickname Nickname(code), no avatar
//	    (headimgurl ""), and unionid UnionID(code)
//
// A sandbox web access_token carries the appid and code it was issued for,
// so /sns/userinfo answers for the right user without keeping any state.
// Web codes, like login codes, can be used again and again.
package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// The codes that simulate platform failures.
const (
	CodeInvalid = "invalid"
	CodeUsed    = "used"
	CodeBlocked = "blocked"
	CodeBusy    = "busy"
	CodeLimited = "limited"
)

// The values of the access_token APIs.
const (
	// TokenExpiresIn is the expires_in, in seconds, of every sandbox
	// access_token, the platform's usual value.
	TokenExpiresIn = 7200
	// RiskyMarker makes content risky: text that contains it in any case, or
	// an image whose bytes do.
	RiskyMarker = "risky"
	// RiskyLabel is the label of risky text (WeChat's label for politics).
	RiskyLabel = 20001
	// PassLabel is the label of text that passes (WeChat's "normal").
	PassLabel = 100
	// PhoneNumber is the number every accepted phone code gets, as both
	// phoneNumber and purePhoneNumber.
	PhoneNumber = "13800138000"
	// PhoneCountryCode is the country code sent with PhoneNumber (as a
	// string, as documented).
	PhoneCountryCode = "86"
)

// The values of the web login.
const (
	// WebScope is the scope of every sandbox web login: the exchange does
	// not carry the scope the authorize page asked for, and the sandbox
	// grants everything, so /sns/userinfo always answers.
	WebScope = "snsapi_userinfo"
	// WebUserParam is the authorize page's query parameter that picks the
	// code, and so the user, a developer logs in as.
	WebUserParam = "sandbox_user"
	// DefaultWebUser is the code the authorize page gives without
	// WebUserParam.
	DefaultWebUser = "alice"
)

// maxWebCode bounds the code the authorize page accepts in WebUserParam:
// the plugin's client refuses longer codes without a call.
const maxWebCode = 256

// maxNicknameCode is the longest code that Nickname shows as it is.
const maxNicknameCode = 32

// webTokenPrefix starts every sandbox web access_token.
const webTokenPrefix = "sandbox-web-"

// The errcodes of the access_token APIs.
const (
	errcodeRisky       = 87014
	errcodeBadToken    = 40001
	errcodeDataFormat  = 47001
	errcodeNoMedia     = 41005
	errcodeInvalidCode = 40029
)

// maxBody bounds a request body the fake reads (JSON or an image).
const maxBody = 10 << 20

// failureCodes maps each failure-simulating code to the answer it gets.
var failureCodes = map[string]failure{
	CodeInvalid: {40029, "invalid code"},
	CodeUsed:    {40163, "code been used"},
	CodeBlocked: {40226, "high risk user, login blocked"},
	CodeBusy:    {-1, "system error"},
	CodeLimited: {45011, "api minute-quota reach limit, mustslower retry next minute"},
}

// failure is an errcode answer, as the platform sends it.
type failure struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// derivationPrefix starts every hashed input. With the purpose label that
// follows it ("openid", "unionid", "session_key"), it keeps the three values
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

// OpenID is the sandbox openid for code in app appid: 28 characters of
// [A-Za-z0-9_-] starting with "o", like a real one.
func OpenID(appid, code string) string {
	return "o" + base64.RawURLEncoding.EncodeToString(derive("openid", appid, code))[:27]
}

// UnionID is the sandbox unionid for code. It does not depend on the app, so
// one code is the same person in every app, as with an Open Platform account.
// It is 29 characters of [A-Za-z0-9_-] starting with "u".
func UnionID(code string) string {
	return "u" + base64.RawURLEncoding.EncodeToString(derive("unionid", code))[:28]
}

// SessionKey is the sandbox session_key for code in app appid: standard
// base64 of 16 bytes, like a real one.
func SessionKey(appid, code string) string {
	return base64.StdEncoding.EncodeToString(derive("session_key", appid, code)[:16])
}

// AccessToken is the sandbox access_token of app appid. It does not depend
// on the secret or the time: a sandbox token never changes.
func AccessToken(appid string) string {
	return "sandbox-token-" + base64.RawURLEncoding.EncodeToString(derive("access_token", appid))[:32]
}

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
	return base64.RawURLEncoding.EncodeToString(derive("web_access_token", appid, code))[:22]
}

// parseWebAccessToken returns the appid and code a WebAccessToken was
// issued for, and false for anything else.
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
	return "sandbox-web-refresh-" + base64.RawURLEncoding.EncodeToString(derive("web_refresh_token", appid, code))[:32]
}

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

// NewHandler returns a fake of the platform's HTTP API. The request's host is
// ignored, so it serves the WeChat and QQ bases alike. Like the real platform,
// errcode answers come with HTTP 200; unknown paths get a 404 with a JSON body.
func NewHandler() http.Handler {
	mux := http.NewServeMux()
	// One route per platform API.
	mux.HandleFunc("GET /sns/jscode2session", code2Session)
	mux.HandleFunc("POST /cgi-bin/stable_token", stableToken)
	mux.HandleFunc("GET /api/getToken", qqToken)
	mux.HandleFunc("POST /wxa/msg_sec_check", textCheck)
	mux.HandleFunc("POST /api/json/security/MsgSecCheck", qqTextCheck)
	mux.HandleFunc("POST /wxa/img_sec_check", imageCheck)
	mux.HandleFunc("POST /api/json/security/ImgSecCheck", imageCheck)
	mux.HandleFunc("POST /wxa/business/getuserphonenumber", phoneNumber)
	mux.HandleFunc("GET /sns/oauth2/access_token", webAccessToken)
	mux.HandleFunc("GET /sns/userinfo", webUserInfo)
	// open.weixin.qq.com's pages, which a browser visits.
	mux.HandleFunc("GET /connect/oauth2/authorize", Authorize)
	mux.HandleFunc("GET /connect/qrconnect", Authorize)
	mux.HandleFunc("/", notFound)
	return mux
}

// exchangeRequest checks what every code exchange (mini program or web)
// must carry, and answers the failure codes; ok is false when it answered.
// noCode is the platform's answer to a missing code, which differs by API.
func exchangeRequest(w http.ResponseWriter, r *http.Request, codeParam string, noCode failure) (appid, code string, ok bool) {
	q := r.URL.Query()
	appid, code = q.Get("appid"), q.Get(codeParam)
	switch {
	case appid == "":
		writeJSON(w, http.StatusOK, failure{40013, "invalid appid"})
		return "", "", false
	case q.Get("grant_type") != "authorization_code":
		// The real platform insists on it; catching it here catches client bugs.
		writeJSON(w, http.StatusOK, failure{40002, "invalid grant_type"})
		return "", "", false
	case code == "":
		writeJSON(w, http.StatusOK, noCode)
		return "", "", false
	}
	if f, isFailure := failureCodes[code]; isFailure {
		writeJSON(w, http.StatusOK, f)
		return "", "", false
	}
	return appid, code, true
}

// code2Session serves /sns/jscode2session.
func code2Session(w http.ResponseWriter, r *http.Request) {
	appid, code, ok := exchangeRequest(w, r, "js_code", failure{40029, "invalid code"})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"openid":      OpenID(appid, code),
		"unionid":     UnionID(code),
		"session_key": SessionKey(appid, code),
	})
}

// webAccessToken serves /sns/oauth2/access_token, the web login's code
// exchange.
func webAccessToken(w http.ResponseWriter, r *http.Request) {
	appid, code, ok := exchangeRequest(w, r, "code", failure{41008, "missing code"})
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token":  WebAccessToken(appid, code),
		"expires_in":    TokenExpiresIn,
		"refresh_token": webRefreshToken(appid, code),
		"openid":        OpenID(appid, code),
		"scope":         WebScope,
		"unionid":       UnionID(code),
	})
}

// webUserInfo serves /sns/userinfo: the profile of the user a
// WebAccessToken was issued for.
func webUserInfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	token, openid := q.Get("access_token"), q.Get("openid")
	if token == "" {
		writeJSON(w, http.StatusOK, failure{errcodeBadToken, "access_token missing"})
		return
	}
	appid, code, ok := parseWebAccessToken(token)
	switch {
	case !ok:
		writeJSON(w, http.StatusOK, failure{errcodeBadToken, "invalid credential, access_token is invalid or not latest"})
		return
	case openid == "":
		writeJSON(w, http.StatusOK, failure{41009, "missing openid"})
		return
	case openid != OpenID(appid, code):
		writeJSON(w, http.StatusOK, failure{40003, "invalid openid"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"openid":     openid,
		"nickname":   Nickname(code),
		"sex":        0,
		"province":   "",
		"city":       "",
		"country":    "",
		"headimgurl": "",
		"privilege":  []string{},
		"unionid":    UnionID(code),
	})
}

// Authorize is the sandbox's authorize page, for /connect/oauth2/authorize
// and /connect/qrconnect alike. The request's path is not looked at, so it
// also serves as a handler wherever the plugin puts its own copy of the page.
//
// It checks the parameters the real page needs (appid; redirect_uri, an
// absolute http(s) URL; response_type=code; scope snsapi_base,
// snsapi_userinfo or snsapi_login; state, 1 to 128 letters and digits) and
// redirects straight back (302) to redirect_uri with code and state added to
// its query, which is otherwise kept (earlier code and state parameters
// excepted). The code is the query parameter sandbox_user (WebUserParam)
// when present, else DefaultWebUser: a developer picks who to log in as, and
// a failure code ("invalid", "blocked", ...) simulates that failure. A bad
// request gets a 400 with a plain-text explanation, where the real page
// shows an error page.
//
// Unlike the real page, which only sends the browser back to the domain
// configured for the app, it redirects to whatever redirect_uri it is given:
// a caller serving it on a public address may want to check redirect_uri
// first.
func Authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "sandbox authorize page: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	code := q.Get(WebUserParam)
	if code == "" {
		code = DefaultWebUser
	}
	if problem := authorizeProblem(q, code); problem != "" {
		http.Error(w, "sandbox authorize page: "+problem, http.StatusBadRequest)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, withCodeAndState(q.Get("redirect_uri"), code, q.Get("state")), http.StatusFound)
}

// authorizeProblem says what is wrong with an authorize page's query, or ""
// when nothing is.
func authorizeProblem(q url.Values, code string) string {
	switch {
	case !valid.ID(q.Get("appid")):
		return "appid is missing or malformed"
	case !absoluteHTTPURL(q.Get("redirect_uri")):
		return "redirect_uri must be an absolute http or https URL (URL-encoded)"
	case q.Get("response_type") != "code":
		return "response_type must be code"
	}
	switch q.Get("scope") {
	case "snsapi_base", "snsapi_userinfo", "snsapi_login":
	default:
		return "scope must be snsapi_base, snsapi_userinfo or snsapi_login"
	}
	switch {
	case !valid.State(q.Get("state")):
		return "state must be 1 to 128 letters and digits"
	case len(code) > maxWebCode:
		return WebUserParam + " is too long"
	}
	return ""
}

// withCodeAndState adds code and state to redirectURI's query, keeping the
// rest of the URL as it is, except earlier code and state parameters, which
// would be read in place of the new ones.
func withCodeAndState(redirectURI, code, state string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI // checked by authorizeProblem: cannot happen
	}
	var params []string
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		key, _, _ := strings.Cut(part, "=")
		if k, err := url.QueryUnescape(key); part == "" || err == nil && (k == "code" || k == "state") {
			continue
		}
		params = append(params, part)
	}
	params = append(params, "code="+url.QueryEscape(code), "state="+url.QueryEscape(state))
	u.RawQuery = strings.Join(params, "&")
	u.ForceQuery = false
	return u.String()
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

// stableToken serves WeChat's POST /cgi-bin/stable_token.
func stableToken(w http.ResponseWriter, r *http.Request) {
	var body struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	writeToken(w, body.AppID, body.GrantType)
}

// qqToken serves QQ's GET /api/getToken.
func qqToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	writeToken(w, q.Get("appid"), q.Get("grant_type"))
}

func writeToken(w http.ResponseWriter, appid, grantType string) {
	switch {
	case appid == "":
		writeJSON(w, http.StatusOK, failure{40013, "invalid appid"})
	case grantType != "client_credential":
		writeJSON(w, http.StatusOK, failure{40002, "invalid grant_type"})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"access_token": AccessToken(appid), "expires_in": TokenExpiresIn})
	}
}

// textCheck serves WeChat's POST /wxa/msg_sec_check (version 2).
func textCheck(w http.ResponseWriter, r *http.Request) {
	if !hasToken(w, r) {
		return
	}
	var body struct {
		Version int    `json:"version"`
		OpenID  string `json:"openid"`
		Scene   int    `json:"scene"`
		Content string `json:"content"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	switch {
	case body.Version != 2:
		// Version 1 answers without a result; catching it here catches
		// client bugs.
		writeJSON(w, http.StatusOK, failure{errcodeDataFormat, "data format error: the sandbox implements version 2"})
		return
	case body.OpenID == "":
		writeJSON(w, http.StatusOK, failure{40003, "invalid openid"})
		return
	}
	suggest, label := "pass", PassLabel
	if isRiskyText(body.Content) {
		suggest, label = "risky", RiskyLabel
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode":  0,
		"errmsg":   "ok",
		"result":   map[string]any{"suggest": suggest, "label": label},
		"trace_id": "sandbox",
	})
}

// qqTextCheck serves QQ's POST /api/json/security/MsgSecCheck.
func qqTextCheck(w http.ResponseWriter, r *http.Request) {
	if !hasToken(w, r) {
		return
	}
	var body struct {
		AppID   string `json:"appid"`
		Content string `json:"content"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	switch {
	case body.AppID == "":
		writeJSON(w, http.StatusOK, failure{40013, "invalid appid"})
	case isRiskyText(body.Content):
		writeJSON(w, http.StatusOK, failure{errcodeRisky, "risky content"})
	default:
		writeJSON(w, http.StatusOK, failure{0, "ok"})
	}
}

// imageCheck serves WeChat's POST /wxa/img_sec_check and QQ's
// POST /api/json/security/ImgSecCheck, which differ only in QQ's extra
// appid field.
func imageCheck(w http.ResponseWriter, r *http.Request) {
	if !hasToken(w, r) {
		return
	}
	media, ok := ReadMedia(r)
	switch {
	case !ok:
		writeJSON(w, http.StatusOK, failure{errcodeNoMedia, "media data missing"})
	case isRiskyImage(media):
		writeJSON(w, http.StatusOK, failure{errcodeRisky, "risky content"})
	default:
		writeJSON(w, http.StatusOK, failure{0, "ok"})
	}
}

// phoneNumber serves POST /wxa/business/getuserphonenumber.
func phoneNumber(w http.ResponseWriter, r *http.Request) {
	if !hasToken(w, r) {
		return
	}
	var body struct {
		Code string `json:"code"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	switch body.Code {
	case "", CodeInvalid, CodeUsed:
		writeJSON(w, http.StatusOK, failure{errcodeInvalidCode, "invalid code"})
		return
	}
	// The watermark has no appid: the sandbox cannot tell an app from its
	// token.
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode": 0,
		"errmsg":  "ok",
		"phone_info": map[string]any{
			"phoneNumber":     PhoneNumber,
			"purePhoneNumber": PhoneNumber,
			"countryCode":     PhoneCountryCode,
			"watermark":       map[string]any{"timestamp": time.Now().Unix()},
		},
	})
}

// isRiskyText reports whether the sandbox judges text risky: it contains
// RiskyMarker in any case.
func isRiskyText(text string) bool {
	return strings.Contains(strings.ToLower(text), RiskyMarker)
}

// isRiskyImage reports whether the sandbox judges an image risky: its bytes
// contain RiskyMarker in any (ASCII) case.
func isRiskyImage(image []byte) bool {
	return bytes.Contains(bytes.ToLower(image), []byte(RiskyMarker))
}

// ReadMedia returns the bytes of the multipart file "media" in r (the image
// of a content check), and false when there is none (or the body is not
// multipart, or too large). It reads r's body.
func ReadMedia(r *http.Request) ([]byte, bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, false
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, false
		}
		if part.FormName() != "media" || part.FileName() == "" {
			continue
		}
		media, err := io.ReadAll(io.LimitReader(part, maxBody+1))
		if err != nil || len(media) > maxBody {
			return nil, false
		}
		return media, true
	}
}

// hasToken answers 40001 and reports false when r has no access_token.
func hasToken(w http.ResponseWriter, r *http.Request) bool {
	if r.URL.Query().Get("access_token") == "" {
		writeJSON(w, http.StatusOK, failure{errcodeBadToken, "access_token missing"})
		return false
	}
	return true
}

// readJSON decodes r's JSON body into v, or answers 47001 and reports false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody || json.Unmarshal(body, v) != nil {
		writeJSON(w, http.StatusOK, failure{errcodeDataFormat, "data format error"})
		return false
	}
	return true
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, failure{404, "sandbox: no such API: " + r.Method + " " + r.URL.Path})
}

// writeJSON writes v as a JSON answer with the given status.
func writeJSON(w http.ResponseWriter, statusCode int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only programming errors get here: every value written is plain data.
		http.Error(w, "sandbox: cannot encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusCode)
	w.Write(body)
}

// Transport returns a RoundTripper that serves every request in-process with
// NewHandler(). It never dials, whatever the request's host.
func Transport() http.RoundTripper {
	return handlerTransport{handler: NewHandler()}
}

// handlerTransport runs an http.Handler in place of a network round trip.
type handlerTransport struct {
	handler http.Handler
}

// errHandlerPanicked reports a panic in the fake, which would otherwise
// crash the whole process from the handler's goroutine.
var errHandlerPanicked = errors.New("sandbox: the fake platform handler panicked")

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil {
		// A RoundTripper must close the body, even on errors.
		defer req.Body.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The handler gets a server-side view of a copy: a RoundTripper must not
	// modify the request, and ServeMux records the matched pattern in it.
	serverReq := req.Clone(ctx)
	serverReq.RequestURI = req.URL.RequestURI()
	if serverReq.Host == "" {
		serverReq.Host = req.URL.Host
	}
	if serverReq.Body == nil {
		serverReq.Body = http.NoBody
	}
	serverReq.RemoteAddr = "sandbox:0"

	rec := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%w: %v", errHandlerPanicked, p)
			}
		}()
		t.handler.ServeHTTP(rec, serverReq)
		done <- nil
	}()

	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		// A handler that returned because the context ended did not
		// answer: report the context's end, as a network transport would,
		// rather than its empty recording.
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	case <-ctx.Done():
		// The handler sees the same context and stops on its own; its
		// recorder is simply dropped.
		return nil, context.Cause(ctx)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
