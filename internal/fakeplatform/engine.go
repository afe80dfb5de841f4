package fakeplatform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"
)

// Options says how an engine differs from the sandbox; the zero value is the
// sandbox.
type Options struct {
	// Stateful makes the engine behave like the real platform where the
	// sandbox is lenient, and remember what it was asked:
	//
	//   - Login codes are single-use per (appid, code): a second successful
	//     exchange gets 40163. Every exchange returns a fresh random
	//     session_key (LastSessionKey has the newest per user).
	//   - stable_token and getToken issue a fresh random token on every
	//     fetch, valid for TokenExpiresIn seconds. (The real normal mode
	//     hands out the same token until shortly before it expires; fresh
	//     tokens let tests tell one fetch from the next.) Earlier tokens stay
	//     valid, as on the real platform, until ExpireTokens (then they get
	//     errcode 42001) or RevokeTokens (40001). The content checks and
	//     getuserphonenumber refuse a missing or unknown token with 40001, and
	//     the phone watermark carries the token's appid.
	//   - Phone codes are single-use per app: a second use gets 40029.
	//   - The authorize pages issue a fresh code "<user>~<n>" each time, so
	//     one user can log in again and again, and they are strict:
	//     qrconnect takes only scope snsapi_login, oauth2/authorize only
	//     snsapi_base and snsapi_userinfo. The exchange takes the user from
	//     the code (WebUser) and answers the scope the page was asked for with
	//     that code (else WebScope). Web codes are single-use per (appid,
	//     code): a second exchange gets 40163. Every exchange issues a fresh
	//     random access_token and refresh_token, which /sns/userinfo checks
	//     like the app tokens (ExpireTokens and RevokeTokens apply to them
	//     too); an snsapi_base token gets 48001.
	//   - Every call is counted and recorded: Calls, CodeCalls, PhoneCalls,
	//     WebCodeCalls, LoginStats, SecretsSeen, Tokens, WebTokens,
	//     TextChecks, ImageChecks, AuthorizeRequests, LastSessionKey, WxaCodes.
	Stateful bool

	// Scripted adds the tests' scripted answers:
	//
	//   - Login and web codes (for the web, the user part of the code):
	//     busyonce (errcode -1 on the first attempt of each (appid, code),
	//     then a normal login), quota (45009), http500 (HTTP 500 with an HTML
	//     body), garbage (HTTP 200 with the body "<html>not json"), badopenid
	//     (a success whose openid is "../../etc"), badkey (login only: a
	//     session_key "short"), nounion (no unionid, in the profile either),
	//     slow (answers after SlowDelay, or gives up when the request's
	//     context ends).
	//   - WeChat's text check answers suggest "review" (label ReviewLabel)
	//     for text containing TextReview, unless it is also risky.
	//   - Phone codes: numeric (countryCode as the JSON number 86), intl
	//     (IntlPhoneNumber), busy (-1), limited (45011).
	//   - Mini-program codes: the page PageMissing gets errcode 41030.
	//   - The web users: the authorize page's user is the query parameter
	//     FakeUserParam, else the one SetAuthorizeCode set, else
	//     ScriptedWebUser; /sns/userinfo answers nickname WebNickname(user)
	//     (with an emoji), headimgurl WebHeadImgURL(user) and a city.
	Scripted bool
}

// Engine is a fake platform: an http.Handler for every API the plugin
// calls. Its methods are safe for concurrent use.
type Engine struct {
	opts      Options
	handler   func() http.Handler // the routes, made on first use
	closing   chan struct{}       // closed by Close, so waiting handlers return
	closeOnce sync.Once

	mu sync.Mutex
	// Faults, which only the methods set.
	apps          map[string]string // appid → secret; empty means accept anything
	delay         time.Duration
	failing       map[string]bool           // paths that answer HTTP 500
	authorizeUser string                    // SetAuthorizeCode's user
	appKeys       map[string]*rsa.PublicKey // SetAppPublicKey's; else the sandbox's

	// Stateful: what was issued.
	redeemed    map[appCode]bool        // login codes exchanged successfully
	tokens      map[string]*issuedToken // every access_token issued
	phoneUsed   map[appCode]bool        // phone codes exchanged successfully
	webRedeemed map[appCode]bool        // web codes exchanged successfully
	webScopes   map[appCode]string      // scope asked for by each code the authorize page issued
	webTokens   map[string]*webGrant    // every web access_token issued
	webCodeSeq  int                     // the last "~<n>" issued

	// Scripted: attempts by (appid, code), for busyonce.
	attempts    map[appCode]int // code2session
	webAttempts map[appCode]int // /sns/oauth2/access_token

	rec recording // Stateful: the counters and recordings
}

type appCode struct{ appid, code string }
type appUser struct{ appid, openid string }

// New returns an engine; New(Options{}) is the sandbox.
func New(opts Options) *Engine {
	e := &Engine{
		opts:        opts,
		closing:     make(chan struct{}),
		apps:        map[string]string{},
		failing:     map[string]bool{},
		appKeys:     map[string]*rsa.PublicKey{},
		redeemed:    map[appCode]bool{},
		tokens:      map[string]*issuedToken{},
		phoneUsed:   map[appCode]bool{},
		webRedeemed: map[appCode]bool{},
		webScopes:   map[appCode]string{},
		webTokens:   map[string]*webGrant{},
		attempts:    map[appCode]int{},
		webAttempts: map[appCode]int{},
		rec:         newRecording(),
	}
	e.handler = sync.OnceValue(e.routes)
	return e
}

// Sandbox returns the engine of the plugin's sandbox mode: New(Options{}).
// It keeps no state, so one serves any number of apps, for ever.
func Sandbox() *Engine {
	return New(Options{})
}

// The paths of the platform APIs.
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

// routes is one route per platform API.
func (e *Engine) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+code2SessionPath, e.code2Session)
	mux.HandleFunc("POST "+stableTokenPath, e.stableToken)
	mux.HandleFunc("GET "+qqTokenPath, e.qqToken)
	mux.HandleFunc("POST "+textCheckPath, e.textCheck)
	mux.HandleFunc("POST "+qqTextCheckPath, e.qqTextCheck)
	mux.HandleFunc("POST "+imageCheckPath, e.imageCheck)
	mux.HandleFunc("POST "+qqImageCheckPath, e.imageCheck)
	mux.HandleFunc("POST "+phonePath, e.phoneNumber)
	mux.HandleFunc("POST "+wxaCodePath, e.wxaCode)
	mux.HandleFunc("GET "+webTokenPath, e.webAccessToken)
	mux.HandleFunc("GET "+userInfoPath, e.webUserInfo)
	// open.weixin.qq.com's pages, which a browser visits.
	mux.HandleFunc("GET "+authorizePath, e.Authorize)
	mux.HandleFunc("GET "+qrConnectPath, e.Authorize)
	mux.HandleFunc("POST "+douyinCode2SessionPath, e.douyinCode2Session)
	mux.HandleFunc("POST "+douyinTokenPath, e.douyinToken)
	mux.HandleFunc("POST "+douyinClientTokenPath, e.douyinClientToken)
	mux.HandleFunc("POST "+douyinTextCheckPath, e.douyinTextCheck)
	mux.HandleFunc("POST "+douyinImageCheckPath, e.douyinImageCheck)
	mux.HandleFunc("POST "+douyinPhonePath, e.douyinPhone)
	mux.HandleFunc("POST "+alipayGatewayPath, e.alipayGateway)
	mux.HandleFunc("POST "+baiduCode2SessionPath, e.baiduCode2Session)
	mux.HandleFunc("POST "+baiduTokenPath, e.baiduToken)
	mux.HandleFunc("POST "+baiduTextCheckPath, e.baiduTextCheck)
	mux.HandleFunc("/", notFound)
	return mux
}

// maxBody bounds a request body the fake reads (JSON or an image).
const maxBody = 10 << 20

// ServeHTTP answers a platform API request. A stateful engine counts and
// records it first, so tests see calls that are still waiting; then come
// SetDelay's wait and FailPath's HTTP 500.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The body is read once, to record what matters, and replayed to the
	// route that answers.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		http.Error(w, "fakeplatform: cannot read the request body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	e.mu.Lock()
	e.arrive(r, body)
	failing, delay := e.failing[r.URL.Path], e.delay
	e.mu.Unlock()

	if !e.wait(r.Context(), delay) {
		return
	}
	if failing {
		writeHTTP500(w)
		return
	}
	e.handler().ServeHTTP(w, r)
}

// Close makes requests still waiting (SetDelay, "slow") return at once
// without an answer, and later waits end at once. Close may be called more
// than once.
func (e *Engine) Close() {
	e.closeOnce.Do(func() { close(e.closing) })
}

// wait pauses d, and reports false if the request's context or the engine
// ended first.
func (e *Engine) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-e.closing:
	}
	return false
}

// failure is an errcode answer, as the platform sends it.
type failure struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// errcodeDataFormat answers a body the fake cannot read.
const errcodeDataFormat = 47001

// The answers given in more than one place.
var (
	failInvalidAppID = failure{40013, "invalid appid"}
	failGrantType    = failure{40002, "invalid grant_type"}
	failInvalidCode  = failure{40029, "invalid code"}
	failCodeUsed     = failure{40163, "code been used"}
	failBadToken     = failure{40001, "invalid credential, access_token is invalid or not latest"}
	failNoToken      = failure{40001, "access_token missing"}
	failExpiredToken = failure{42001, "access_token expired"}
	failBadOpenID    = failure{40003, "invalid openid"}
	failDataFormat   = failure{errcodeDataFormat, "data format error"}
	failRisky        = failure{87014, "risky content"}
	failBusy         = failure{-1, "system error"}
	failLimited      = failure{45011, "api minute-quota reach limit, mustslower retry next minute"}
	passed           = failure{0, "ok"}
)

// readJSON decodes r's JSON body into v, or answers 47001 and reports false.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody || json.Unmarshal(body, v) != nil {
		writeJSON(w, http.StatusOK, failDataFormat)
		return false
	}
	return true
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusNotFound, failure{404, "sandbox: no such API: " + r.Method + " " + r.URL.Path})
}

// writeHTTP500 answers like a failing platform front end.
func writeHTTP500(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(w, "<html><body><h1>500 Internal Server Error</h1></body></html>")
}

// writeFailure answers f with HTTP 200, as the platform does.
func writeFailure(w http.ResponseWriter, f failure) {
	writeJSON(w, http.StatusOK, f)
}

// writeJSON writes v as a JSON answer with the given status.
func writeJSON(w http.ResponseWriter, statusCode int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only programming errors get here: every value written is plain data.
		http.Error(w, "fakeplatform: cannot encode answer", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(statusCode)
	w.Write(body)
}
