// Package platformtest provides a fake WeChat/QQ platform server for tests.
//
// It answers like the sandbox (a code gives sandbox.OpenID(appid, code) and
// sandbox.UnionID(code)) but behaves more like the real platform: codes are
// single-use, every exchange returns a fresh random session_key, and app
// credentials can be checked. Scripted codes simulate failures:
//
//	invalid, used, blocked, busy, limited   as in package sandbox
//	busyonce   errcode -1 the first time, then a normal login
//	quota      errcode 45009 (daily quota reached)
//	http500    HTTP 500 with an HTML body
//	garbage    HTTP 200 with the body "<html>not json"
//	badopenid  a success whose openid is "../../etc"
//	badkey     a success whose session_key is "short"
//	nounion    a success without a unionid
//	slow       answers after 10s, or gives up when the request's context ends
//
// The APIs that need an access_token behave like the real ones too:
//
//   - stable_token (WeChat) and getToken (QQ) check the secret like
//     code2session and issue a fresh random token on every fetch, valid for
//     7200 s. (The real normal mode hands out the same token until shortly
//     before it expires; fresh tokens let tests tell one fetch from the
//     next.) Earlier tokens stay valid, as on the real platform, until
//     ExpireTokens (then they get errcode 42001) or RevokeTokens (40001).
//   - msg_sec_check, img_sec_check, getuserphonenumber and QQ's MsgSecCheck
//     and ImgSecCheck refuse a missing or unknown token with 40001.
//   - Content checks answer like the sandbox's ("risky" is risky); WeChat's
//     text check also answers suggest "review" for text containing
//     TextReview. Each check that got past the token is recorded
//     (TextChecks, ImageChecks).
//   - Phone codes are single-use per app (a second use gets 40029) and
//     scripted: "numeric" answers countryCode as the JSON number 86, "intl"
//     a US number (IntlPhoneNumber), "invalid" and "used" 40029, "busy" -1,
//     "limited" 45011; any other code the sandbox's fixed number.
//
// Web logins (wechat-web, wechat-qr) behave like the real ones too:
//
//   - The authorize pages, GET /connect/oauth2/authorize and
//     GET /connect/qrconnect, are served on the same server (point open_base
//     at URL). Each request is recorded (AuthorizeRequests), checked like the
//     sandbox's page, and more strictly: qrconnect takes only scope
//     snsapi_login, oauth2/authorize only snsapi_base and snsapi_userinfo,
//     and once apps are registered (AddApp) an unknown appid is refused.
//     A bad request gets a 400; a good one a 302 back to redirect_uri with
//     state and a fresh code "<user>~<n>", where user is the fake_user query
//     parameter (FakeUserParam), else the one SetAuthorizeCode set, else
//     DefaultWebUser ("webuser"). Fresh codes let one user log in again and
//     again although codes are single-use.
//   - GET /sns/oauth2/access_token checks the secret like code2session. A
//     code "<user>" or "<user>~<n>" logs in user, with openid
//     sandbox.OpenID(appid, user) and unionid sandbox.UnionID(user): web
//     "alice" is mini-program "alice", as with an Open Platform account.
//     Codes are single-use per (appid, code): a second exchange gets 40163.
//     The user part may be a scripted code: invalid, used, blocked, busy,
//     limited, busyonce, quota, http500, garbage, badopenid, nounion and slow
//     answer as they do for code2session. The scope answered is the one the
//     authorize page was asked for with that code, else snsapi_userinfo.
//     Every exchange issues a fresh random access_token and refresh_token
//     (WebTokens).
//   - GET /sns/userinfo needs one of those access_tokens (else 40001; 42001
//     and 40001 after ExpireTokens and RevokeTokens, which apply to web
//     tokens too) and its openid (else 40003); an snsapi_base token gets
//     48001. It answers nickname WebNickname(user) (with an emoji),
//     headimgurl WebHeadImgURL(user) and, unless nounion, the unionid.
//
// FailPath makes every request to a path answer HTTP 500 until HealPath.
package platformtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/platform/sandbox"
)

// The scripted codes this server adds to the sandbox's.
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

// The web login's authorize pages.
const (
	// FakeUserParam is the authorize page's query parameter naming the user
	// its code logs in.
	FakeUserParam = "fake_user"
	// DefaultWebUser is the user the authorize page's codes log in without
	// FakeUserParam or SetAuthorizeCode.
	DefaultWebUser = "webuser"
)

// AuthorizeRequest is one request to an authorize page, as received.
type AuthorizeRequest struct {
	Path         string // "/connect/oauth2/authorize" or "/connect/qrconnect"
	AppID        string
	RedirectURI  string // decoded
	ResponseType string
	Scope        string
	State        string
	RawQuery     string // exactly as sent, to check the parameters' order and encoding
	Code         string // the code the redirect carried; "" when the request was refused
}

// Scripted phone codes and what they answer.
const (
	PhoneCodeNumeric    = "numeric" // the sandbox's number, countryCode sent as the JSON number 86
	PhoneCodeIntl       = "intl"    // IntlPhoneNumber, IntlPurePhoneNumber, IntlCountryCode
	IntlPhoneNumber     = "+1 2025550123"
	IntlPurePhoneNumber = "2025550123"
	IntlCountryCode     = "1"
)

// TextReview in a text makes WeChat's text check answer suggest "review"
// with label ReviewLabel (unless the text is also risky).
const (
	TextReview  = "review"
	ReviewLabel = 21000
)

// TokenExpiresIn is the expires_in, in seconds, of every token issued.
const TokenExpiresIn = 7200

// SlowDelay is how long the "slow" code takes to answer.
const SlowDelay = 10 * time.Second

// The paths the server answers itself; others go to the sandbox.
const (
	code2SessionPath = "/sns/jscode2session"
	stableTokenPath  = "/cgi-bin/stable_token"
	qqTokenPath      = "/api/getToken"
	textCheckPath    = "/wxa/msg_sec_check"
	qqTextCheckPath  = "/api/json/security/MsgSecCheck"
	imageCheckPath   = "/wxa/img_sec_check"
	qqImageCheckPath = "/api/json/security/ImgSecCheck"
	phonePath        = "/wxa/business/getuserphonenumber"
	webTokenPath     = "/sns/oauth2/access_token"
	userInfoPath     = "/sns/userinfo"
	authorizePath    = "/connect/oauth2/authorize"
	qrConnectPath    = "/connect/qrconnect"
)

// webCodeSeparator separates the user from the counter in the codes the
// authorize page issues: "alice~3".
const webCodeSeparator = "~"

// defaultWebScope is the scope of a web code the authorize page did not
// issue: the one that lets /sns/userinfo answer.
const defaultWebScope = "snsapi_userinfo"

// WebNickname is the nickname /sns/userinfo answers for user: "Web " + user
// and an emoji, as real nicknames often have.
func WebNickname(user string) string {
	return "Web " + user + " 🌐"
}

// WebHeadImgURL is the avatar URL /sns/userinfo answers for user, shaped
// like WeChat's.
func WebHeadImgURL(user string) string {
	return "https://thirdwx.qlogo.cn/mmopen/" + url.PathEscape(user) + "/132"
}

// WebUser is the user a web code logs in: code without the "~<n>" the
// authorize page adds.
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

// maxBody bounds the request bodies read.
const maxBody = 10 << 20

// TextCheck is one text check the server answered, its fields as received.
type TextCheck struct {
	AppID   string // the app the access_token was issued to
	OpenID  string // "" for QQ
	Scene   int    // 0 for QQ
	Version int    // 0 for QQ
	Content string
}

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

// webGrant is what a web access_token was issued for.
type webGrant struct {
	user, openid, scope string
	noUnion             bool
	state               tokenState
}

// Server is a fake platform API. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API base to configure (App.APIBase, api_base), without a
	// trailing slash.
	URL string

	srv       *httptest.Server
	sandbox   http.Handler
	closing   chan struct{} // closed by Close, so waiting handlers return
	closeOnce sync.Once

	mu          sync.Mutex
	apps        map[string]string // appid → secret; empty means accept anything
	delay       time.Duration
	calls       map[string]int     // by URL path
	codeCalls   map[string]int     // code2session calls by js_code
	attempts    map[appCode]int    // code2session calls by (appid, js_code)
	redeemed    map[appCode]bool   // codes already exchanged successfully
	sessionKeys map[appUser]string // newest session_key by (appid, openid)
	secrets     []string
	failing     map[string]bool         // paths that answer HTTP 500
	tokens      map[string]*issuedToken // every access_token issued
	tokenOrder  []string                // the same, in order
	textChecks  []TextCheck
	imageChecks [][]byte
	phoneCalls  map[string]int   // getuserphonenumber calls by code
	phoneUsed   map[appCode]bool // phone codes already exchanged successfully

	webCodeCalls  map[string]int       // web exchanges by code, and by user
	webAttempts   map[appCode]int      // web exchanges by (appid, code)
	webRedeemed   map[appCode]bool     // web codes already exchanged successfully
	webScopes     map[appCode]string   // scope asked for by each code the authorize page issued
	webTokens     map[string]*webGrant // every web access_token issued
	webSecrets    []string             // the same and the refresh_tokens, in order
	authorizeReqs []AuthorizeRequest
	authorizeUser string // SetAuthorizeCode's user
	webCodeSeq    int    // the last "~<n>" issued
}

type appCode struct{ appid, code string }
type appUser struct{ appid, openid string }

// New starts a fake platform and stops it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		sandbox:     sandbox.NewHandler(),
		closing:     make(chan struct{}),
		apps:        map[string]string{},
		calls:       map[string]int{},
		codeCalls:   map[string]int{},
		attempts:    map[appCode]int{},
		redeemed:    map[appCode]bool{},
		sessionKeys: map[appUser]string{},
		failing:     map[string]bool{},
		tokens:      map[string]*issuedToken{},
		phoneCalls:  map[string]int{},
		phoneUsed:   map[appCode]bool{},

		webCodeCalls: map[string]int{},
		webAttempts:  map[appCode]int{},
		webRedeemed:  map[appCode]bool{},
		webScopes:    map[appCode]string{},
		webTokens:    map[string]*webGrant{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server. Requests still waiting (SetDelay, "slow") return at
// once without an answer. Close may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.srv.Close()
	})
}

// AddApp registers an app. Once any app is registered, code2session and
// token calls with an unknown appid get errcode 40013 and those with a wrong
// secret get 40125; before that, any appid and secret are accepted.
func (s *Server) AddApp(appid, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apps[appid] = secret
}

// SetDelay makes every later answer wait d first (or until the request's
// context ends).
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Calls is how many requests reached path, e.g. "/sns/jscode2session".
func (s *Server) Calls(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[path]
}

// CodeCalls is how many code2session calls carried js_code code, in any app.
func (s *Server) CodeCalls(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.codeCalls[code]
}

// SecretsSeen is every secret received, in order: "secret" query values and
// stable_token's JSON "secret".
func (s *Server) SecretsSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secrets)
}

// FailPath makes every later request to path (e.g. "/wxa/img_sec_check")
// answer HTTP 500 with an HTML body, as a failing platform does. The request
// is still counted by Calls.
func (s *Server) FailPath(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failing[path] = true
}

// HealPath undoes FailPath.
func (s *Server) HealPath(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failing, path)
}

// ExpireTokens makes every access_token issued so far answer errcode 42001
// (expired) from now on. Tokens issued later are valid.
func (s *Server) ExpireTokens() {
	s.setTokens(tokenExpired)
}

// RevokeTokens makes every access_token issued so far answer errcode 40001
// (invalid, as after someone else's forced refresh) from now on.
func (s *Server) RevokeTokens() {
	s.setTokens(tokenRevoked)
}

func (s *Server) setTokens(state tokenState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.state = state
	}
	for _, g := range s.webTokens {
		g.state = state
	}
}

// WebCodeCalls is how many /sns/oauth2/access_token calls carried code, in
// any app. The calls with a code the authorize page issued ("alice~3") also
// count as calls with the user's ("alice").
func (s *Server) WebCodeCalls(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.webCodeCalls[code]
}

// WebTokens is every web access_token and refresh_token issued, in order:
// the user's secrets, which tests can look for where they must not be.
func (s *Server) WebTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.webSecrets)
}

// AuthorizeRequests is every request an authorize page answered (those
// failed by FailPath are only counted by Calls), in order.
func (s *Server) AuthorizeRequests() []AuthorizeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authorizeReqs)
}

// SetAuthorizeCode makes the authorize pages' later codes log in user when
// the request has no FakeUserParam; "" restores DefaultWebUser. The codes
// are still fresh ones ("<user>~<n>").
func (s *Server) SetAuthorizeCode(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorizeUser = user
}

// Tokens is every access_token issued, in order.
func (s *Server) Tokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenOrder)
}

// TextChecks is every text check answered (those refused for their token
// are not), in order.
func (s *Server) TextChecks() []TextCheck {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.textChecks)
}

// ImageChecks is the media bytes of every image check answered (those
// refused for their token are not), in order.
func (s *Server) ImageChecks() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	checks := make([][]byte, len(s.imageChecks))
	for i, c := range s.imageChecks {
		checks[i] = slices.Clone(c)
	}
	return checks
}

// PhoneCalls is how many getuserphonenumber requests carried code, whatever
// they were answered.
func (s *Server) PhoneCalls(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.phoneCalls[code]
}

// LastSessionKey is the session_key of the newest successful login of openid
// in app appid, or "" if there was none.
func (s *Server) LastSessionKey(appid, openid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionKeys[appUser{appid, openid}]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	isCode2Session := r.Method == http.MethodGet && r.URL.Path == code2SessionPath
	// The body is read once, to record what matters, and replayed to
	// whichever handler answers.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		http.Error(w, "platformtest: cannot read the request body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	// Record before waiting, so tests can see calls that are still in flight.
	s.mu.Lock()
	s.calls[r.URL.Path]++
	s.secrets = append(s.secrets, query["secret"]...)
	switch {
	case isCode2Session:
		code := query.Get("js_code")
		s.codeCalls[code]++
		s.attempts[appCode{query.Get("appid"), code}]++
	case r.URL.Path == stableTokenPath:
		var b struct {
			Secret *string `json:"secret"`
		}
		if json.Unmarshal(body, &b) == nil && b.Secret != nil {
			s.secrets = append(s.secrets, *b.Secret)
		}
	case r.URL.Path == phonePath:
		var b struct {
			Code string `json:"code"`
		}
		json.Unmarshal(body, &b) // a malformed body counts as code ""
		s.phoneCalls[b.Code]++
	case r.Method == http.MethodGet && r.URL.Path == webTokenPath:
		code := query.Get("code")
		s.webCodeCalls[code]++
		if user := WebUser(code); user != code {
			s.webCodeCalls[user]++
		}
		s.webAttempts[appCode{query.Get("appid"), code}]++
	}
	failing := s.failing[r.URL.Path]
	delay := s.delay
	s.mu.Unlock()

	if !s.wait(r.Context(), delay) {
		return
	}
	if failing {
		writeHTTP500(w)
		return
	}
	switch r.Method + " " + r.URL.Path {
	case "GET " + code2SessionPath:
		s.code2Session(w, r, query)
	case "POST " + stableTokenPath:
		var b struct {
			GrantType string `json:"grant_type"`
			AppID     string `json:"appid"`
			Secret    string `json:"secret"`
		}
		if json.Unmarshal(body, &b) != nil {
			writeFailure(w, 47001, "data format error")
			return
		}
		s.issueToken(w, b.AppID, b.Secret, b.GrantType)
	case "GET " + qqTokenPath:
		s.issueToken(w, query.Get("appid"), query.Get("secret"), query.Get("grant_type"))
	case "POST " + textCheckPath, "POST " + qqTextCheckPath:
		if appid, ok := s.checkToken(w, query); ok {
			s.textCheck(w, r, appid, body)
		}
	case "POST " + imageCheckPath, "POST " + qqImageCheckPath:
		if _, ok := s.checkToken(w, query); ok {
			s.imageCheck(w, r, body)
		}
	case "POST " + phonePath:
		if appid, ok := s.checkToken(w, query); ok {
			s.phoneNumber(w, appid, body)
		}
	case "GET " + webTokenPath:
		s.webAccessToken(w, r, query)
	case "GET " + userInfoPath:
		s.webUserInfo(w, query)
	case "GET " + authorizePath, "GET " + qrConnectPath, "HEAD " + authorizePath, "HEAD " + qrConnectPath:
		s.authorize(w, r, query)
	default:
		// Wrong methods and unknown paths get the sandbox's answers.
		s.sandbox.ServeHTTP(w, r)
	}
}

// issueToken serves stable_token and getToken: the credentials are checked,
// and a fresh random token is issued.
func (s *Server) issueToken(w http.ResponseWriter, appid, secret, grantType string) {
	if errcode, errmsg := s.checkApp(appid, secret); errcode != 0 {
		writeFailure(w, errcode, errmsg)
		return
	}
	switch {
	case appid == "":
		writeFailure(w, 40013, "invalid appid")
		return
	case grantType != "client_credential":
		writeFailure(w, 40002, "invalid grant_type")
		return
	}
	raw := make([]byte, 48)
	rand.Read(raw) // never fails: crypto/rand crashes the program rather than return an error
	token := base64.RawURLEncoding.EncodeToString(raw)
	s.mu.Lock()
	s.tokens[token] = &issuedToken{appid: appid}
	s.tokenOrder = append(s.tokenOrder, token)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "expires_in": TokenExpiresIn})
}

// checkToken answers the errcode of a missing, unknown, expired or revoked
// access_token and reports false, or returns the app the token belongs to.
func (s *Server) checkToken(w http.ResponseWriter, query url.Values) (string, bool) {
	s.mu.Lock()
	t, ok := s.tokens[query.Get("access_token")]
	var state tokenState
	if ok {
		state = t.state
	}
	s.mu.Unlock()
	switch {
	case !ok, state == tokenRevoked:
		writeFailure(w, 40001, "invalid credential, access_token is invalid or not latest")
		return "", false
	case state == tokenExpired:
		writeFailure(w, 42001, "access_token expired")
		return "", false
	}
	return t.appid, true
}

// textCheck records a text check, answers "review" when scripted, and lets
// the sandbox answer the rest.
func (s *Server) textCheck(w http.ResponseWriter, r *http.Request, appid string, body []byte) {
	var b struct {
		AppID   string `json:"appid"` // QQ's
		OpenID  string `json:"openid"`
		Scene   int    `json:"scene"`
		Version int    `json:"version"`
		Content string `json:"content"`
	}
	if json.Unmarshal(body, &b) != nil {
		writeFailure(w, 47001, "data format error")
		return
	}
	check := TextCheck{AppID: appid, OpenID: b.OpenID, Scene: b.Scene, Version: b.Version, Content: b.Content}
	if b.AppID != "" {
		check.AppID = b.AppID
	}
	s.mu.Lock()
	s.textChecks = append(s.textChecks, check)
	s.mu.Unlock()

	lower := strings.ToLower(b.Content)
	if r.URL.Path == textCheckPath && b.Version == 2 && b.OpenID != "" &&
		strings.Contains(lower, TextReview) && !strings.Contains(lower, sandbox.RiskyMarker) {
		writeJSON(w, http.StatusOK, map[string]any{
			"errcode":  0,
			"errmsg":   "ok",
			"result":   map[string]any{"suggest": "review", "label": ReviewLabel},
			"trace_id": "platformtest",
		})
		return
	}
	s.sandbox.ServeHTTP(w, r)
}

// imageCheck records the media and lets the sandbox answer.
func (s *Server) imageCheck(w http.ResponseWriter, r *http.Request, body []byte) {
	copied := r.Clone(r.Context())
	copied.Body = io.NopCloser(bytes.NewReader(body))
	if media, ok := sandbox.ReadMedia(copied); ok {
		s.mu.Lock()
		s.imageChecks = append(s.imageChecks, media)
		s.mu.Unlock()
	}
	s.sandbox.ServeHTTP(w, r) // r.Body is still unread: the sandbox reads it
}

// phoneNumber serves getuserphonenumber: scripted codes, single use, and
// the sandbox's number for the rest.
func (s *Server) phoneNumber(w http.ResponseWriter, appid string, body []byte) {
	var b struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &b) != nil {
		writeFailure(w, 47001, "data format error")
		return
	}
	switch b.Code {
	case "", sandbox.CodeInvalid, sandbox.CodeUsed:
		writeFailure(w, 40029, "invalid code")
		return
	case sandbox.CodeBusy:
		writeFailure(w, -1, "system error")
		return
	case sandbox.CodeLimited:
		writeFailure(w, 45011, "api minute-quota reach limit, mustslower retry next minute")
		return
	}

	key := appCode{appid, b.Code}
	s.mu.Lock()
	used := s.phoneUsed[key]
	s.phoneUsed[key] = true
	s.mu.Unlock()
	if used {
		writeFailure(w, 40029, "invalid code")
		return
	}

	phone, pure, country := sandbox.PhoneNumber, sandbox.PhoneNumber, any(sandbox.PhoneCountryCode)
	switch b.Code {
	case PhoneCodeNumeric:
		country = 86
	case PhoneCodeIntl:
		phone, pure, country = IntlPhoneNumber, IntlPurePhoneNumber, IntlCountryCode
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"errcode": 0,
		"errmsg":  "ok",
		"phone_info": map[string]any{
			"phoneNumber":     phone,
			"purePhoneNumber": pure,
			"countryCode":     country,
			"watermark":       map[string]any{"appid": appid, "timestamp": time.Now().Unix()},
		},
	})
}

// code2Session serves /sns/jscode2session: the scripted codes, then the
// sandbox's answer made single-use and given a fresh session_key.
func (s *Server) code2Session(w http.ResponseWriter, r *http.Request, query url.Values) {
	appid, code := query.Get("appid"), query.Get("js_code")
	if errcode, errmsg := s.checkApp(appid, query.Get("secret")); errcode != 0 {
		writeFailure(w, errcode, errmsg)
		return
	}

	s.mu.Lock()
	first := s.attempts[appCode{appid, code}] == 1
	s.mu.Unlock()
	if !s.scripted(w, r, code, first) {
		return
	}

	// The sandbox derives the identity and handles its own failure codes.
	rec := httptest.NewRecorder()
	s.sandbox.ServeHTTP(rec, r)
	var answer map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer["errcode"] != nil {
		copyResponse(w, rec)
		return
	}
	openid, _ := answer["openid"].(string)

	// Like the real platform, a code logs in once; the random session_key
	// lets tests tell one login from the next.
	key := appCode{appid, code}
	sessionKey := randomSessionKey()
	s.mu.Lock()
	if s.redeemed[key] {
		s.mu.Unlock()
		writeFailure(w, 40163, "code been used")
		return
	}
	s.redeemed[key] = true
	switch code {
	case CodeBadOpenID, CodeBadKey:
		// Garbage answers: no session to remember.
	default:
		s.sessionKeys[appUser{appid, openid}] = sessionKey
	}
	s.mu.Unlock()

	answer["session_key"] = sessionKey
	switch code {
	case CodeBadOpenID:
		answer["openid"] = "../../etc"
	case CodeBadKey:
		answer["session_key"] = "short"
	case CodeNoUnion:
		delete(answer, "unionid")
	}
	writeJSON(w, http.StatusOK, answer)
}

// webAccessToken serves /sns/oauth2/access_token: the scripted codes, then
// the sandbox's answer for the code's user, made single-use and given fresh
// random tokens and the scope the authorize page was asked for.
func (s *Server) webAccessToken(w http.ResponseWriter, r *http.Request, query url.Values) {
	appid, code := query.Get("appid"), query.Get("code")
	if errcode, errmsg := s.checkApp(appid, query.Get("secret")); errcode != 0 {
		writeFailure(w, errcode, errmsg)
		return
	}
	user := WebUser(code)
	s.mu.Lock()
	first := s.webAttempts[appCode{appid, code}] == 1
	s.mu.Unlock()
	if !s.scripted(w, r, user, first) {
		return
	}

	// The sandbox checks the request, derives the identity and answers its
	// own failure codes; it is asked about the user, not the fresh code.
	sandboxQuery := url.Values{}
	for k, v := range query {
		sandboxQuery[k] = v
	}
	sandboxQuery.Set("code", user)
	sandboxReq := r.Clone(r.Context())
	sandboxReq.URL.RawQuery = sandboxQuery.Encode()
	rec := httptest.NewRecorder()
	s.sandbox.ServeHTTP(rec, sandboxReq)
	var answer map[string]any
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &answer) != nil || answer["errcode"] != nil {
		copyResponse(w, rec)
		return
	}
	openid, _ := answer["openid"].(string)

	key := appCode{appid, code}
	token, refresh := randomToken(), randomToken()
	s.mu.Lock()
	if s.webRedeemed[key] {
		s.mu.Unlock()
		writeFailure(w, 40163, "code been used")
		return
	}
	s.webRedeemed[key] = true
	scope := s.webScopes[key]
	if scope == "" {
		scope = defaultWebScope
	}
	s.webTokens[token] = &webGrant{user: user, openid: openid, scope: scope, noUnion: user == CodeNoUnion}
	s.webSecrets = append(s.webSecrets, token, refresh)
	s.mu.Unlock()

	answer["access_token"] = token
	answer["refresh_token"] = refresh
	answer["scope"] = scope
	switch user {
	case CodeBadOpenID:
		answer["openid"] = "../../etc"
	case CodeNoUnion:
		delete(answer, "unionid")
	}
	writeJSON(w, http.StatusOK, answer)
}

// scripted answers the scripted codes that need no identity (http500,
// garbage, quota, busyonce on its first attempt, slow) and reports whether
// the exchange goes on.
func (s *Server) scripted(w http.ResponseWriter, r *http.Request, code string, firstAttempt bool) bool {
	switch code {
	case CodeHTTP500:
		writeHTTP500(w)
		return false
	case CodeGarbage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html>not json")
		return false
	case CodeQuota:
		writeFailure(w, 45009, "reach max api daily quota limit")
		return false
	case CodeBusyOnce:
		if firstAttempt {
			writeFailure(w, -1, "system error")
			return false
		}
	case CodeSlow:
		return s.wait(r.Context(), SlowDelay)
	}
	return true
}

// webUserInfo serves /sns/userinfo for the web access_tokens issued.
func (s *Server) webUserInfo(w http.ResponseWriter, query url.Values) {
	s.mu.Lock()
	var g webGrant
	issued, ok := s.webTokens[query.Get("access_token")]
	if ok {
		g = *issued
	}
	s.mu.Unlock()
	switch {
	case !ok, g.state == tokenRevoked:
		writeFailure(w, 40001, "invalid credential, access_token is invalid or not latest")
		return
	case g.state == tokenExpired:
		writeFailure(w, 42001, "access_token expired")
		return
	case query.Get("openid") == "":
		writeFailure(w, 41009, "missing openid")
		return
	case query.Get("openid") != g.openid:
		writeFailure(w, 40003, "invalid openid")
		return
	case g.scope == "snsapi_base":
		writeFailure(w, 48001, "api unauthorized")
		return
	}
	answer := map[string]any{
		"openid":     g.openid,
		"nickname":   WebNickname(g.user),
		"sex":        1,
		"province":   "Guangdong",
		"city":       "Guangzhou",
		"country":    "CN",
		"headimgurl": WebHeadImgURL(g.user),
		"privilege":  []string{},
	}
	if !g.noUnion {
		answer["unionid"] = sandbox.UnionID(g.user)
	}
	writeJSON(w, http.StatusOK, answer)
}

// authorize serves the authorize pages: it records the request, checks
// what the sandbox's page does not, and lets the sandbox's page redirect
// back with a fresh code.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, query url.Values) {
	req := AuthorizeRequest{
		Path:         r.URL.Path,
		AppID:        query.Get("appid"),
		RedirectURI:  query.Get("redirect_uri"),
		ResponseType: query.Get("response_type"),
		Scope:        query.Get("scope"),
		State:        query.Get("state"),
		RawQuery:     r.URL.RawQuery,
	}
	defer func() {
		s.mu.Lock()
		s.authorizeReqs = append(s.authorizeReqs, req)
		s.mu.Unlock()
	}()

	var problem string
	switch {
	case r.URL.Path == qrConnectPath && req.Scope != "snsapi_login":
		problem = "qrconnect takes only scope snsapi_login"
	case r.URL.Path == authorizePath && req.Scope != "snsapi_base" && req.Scope != "snsapi_userinfo":
		problem = "oauth2/authorize takes only scope snsapi_base or snsapi_userinfo"
	case !s.knownApp(req.AppID):
		problem = "unknown appid"
	}
	if problem != "" {
		http.Error(w, "platformtest authorize page: "+problem, http.StatusBadRequest)
		return
	}

	s.mu.Lock()
	user := query.Get(FakeUserParam)
	if user == "" {
		user = s.authorizeUser
	}
	if user == "" {
		user = DefaultWebUser
	}
	s.webCodeSeq++
	code := user + webCodeSeparator + strconv.Itoa(s.webCodeSeq)
	s.mu.Unlock()

	pageQuery := url.Values{}
	for k, v := range query {
		pageQuery[k] = v
	}
	pageQuery.Set(sandbox.WebUserParam, code)
	pageReq := r.Clone(r.Context())
	pageReq.URL.RawQuery = pageQuery.Encode()
	rec := httptest.NewRecorder()
	sandbox.Authorize(rec, pageReq)
	if rec.Code == http.StatusFound {
		req.Code = code
		s.mu.Lock()
		s.webScopes[appCode{req.AppID, code}] = req.Scope
		s.mu.Unlock()
	}
	copyResponse(w, rec)
}

// knownApp reports whether appid may use the authorize page: any appid
// until AddApp is called, then only the registered ones.
func (s *Server) knownApp(appid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.apps[appid]
	return ok || len(s.apps) == 0
}

// checkApp returns the errcode the real platform gives for bad credentials,
// or 0 when they are fine.
func (s *Server) checkApp(appid, secret string) (int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.apps) == 0 {
		return 0, ""
	}
	want, ok := s.apps[appid]
	switch {
	case !ok:
		return 40013, "invalid appid"
	case secret != want:
		return 40125, "invalid appsecret"
	}
	return 0, ""
}

// wait pauses d, and reports false if the request's context or the server
// ended first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.closing:
	}
	return false
}

// randomToken is a fresh web access_token or refresh_token, shaped like
// WeChat's.
func randomToken() string {
	raw := make([]byte, 48)
	rand.Read(raw) // never fails: crypto/rand crashes the program rather than return an error
	return base64.RawURLEncoding.EncodeToString(raw)
}

func randomSessionKey() string {
	key := make([]byte, 16)
	rand.Read(key) // never fails: crypto/rand crashes the program rather than return an error
	return base64.StdEncoding.EncodeToString(key)
}

// writeHTTP500 answers like a failing platform front end.
func writeHTTP500(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, "<html><body><h1>500 Internal Server Error</h1></body></html>")
}

func writeFailure(w http.ResponseWriter, errcode int, errmsg string) {
	writeJSON(w, http.StatusOK, map[string]any{"errcode": errcode, "errmsg": errmsg})
}

func writeJSON(w http.ResponseWriter, statusCode int, v any) {
	var body bytes.Buffer
	if err := json.NewEncoder(&body).Encode(v); err != nil {
		http.Error(w, "platformtest: cannot encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusCode)
	w.Write(body.Bytes())
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}
