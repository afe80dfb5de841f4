package fakeplatform

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"time"
)

// AddApp registers an app. Once any app is registered, code exchanges and
// token fetches with an unknown appid get errcode 40013 and those with a
// wrong secret get 40125, and the authorize pages refuse an unknown appid;
// before that, any appid and secret are accepted.
func (e *Engine) AddApp(appid, secret string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.apps[appid] = secret
}

// checkApp is the answer the real platform gives for bad credentials, and
// true when they are fine.
func (e *Engine) checkApp(appid, secret string) (failure, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.apps) == 0 {
		return failure{}, true
	}
	want, ok := e.apps[appid]
	switch {
	case !ok:
		return failInvalidAppID, false
	case secret != want:
		return failure{40125, "invalid appsecret"}, false
	}
	return failure{}, true
}

// knownApp reports whether appid may use the authorize pages: any appid
// until AddApp is called, then only the registered ones.
func (e *Engine) knownApp(appid string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.apps[appid]
	return ok || len(e.apps) == 0
}

// SetDelay makes every later answer wait d first (or until the request's
// context ends, or Close).
func (e *Engine) SetDelay(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.delay = d
}

// FailPath makes every later request to path (e.g. "/wxa/img_sec_check")
// answer HTTP 500 with an HTML body, as a failing platform does. The request
// is still counted by Calls.
func (e *Engine) FailPath(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failing[path] = true
}

// HealPath undoes FailPath.
func (e *Engine) HealPath(path string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.failing, path)
}

// firstAttempt reports whether the request being answered is the first for
// (appid, code) in attempts (Options.Scripted's, counted on arrival).
func (e *Engine) firstAttempt(attempts map[appCode]int, appid, code string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return attempts[appCode{appid, code}] == 1
}

// recording is what a stateful engine counts and records.
type recording struct {
	calls         map[string]int // by URL path
	codeCalls     map[string]int // code2session calls by js_code
	codeRejected  map[string]int // the same, refused for their credentials or parameters
	phoneCalls    map[string]int // getuserphonenumber calls by code
	webCodeCalls  map[string]int // web exchanges by code, and by user
	secrets       []string
	tokens        []string           // every access_token issued, in order
	webSecrets    []string           // every web access_token and refresh_token, in order
	sessionKeys   map[appUser]string // newest session_key by (appid, openid)
	textChecks    []TextCheck
	imageChecks   [][]byte
	authorizeReqs []AuthorizeRequest
	wxaCodes      []WxaCode
}

func newRecording() recording {
	return recording{
		calls:        map[string]int{},
		codeCalls:    map[string]int{},
		codeRejected: map[string]int{},
		phoneCalls:   map[string]int{},
		webCodeCalls: map[string]int{},
		sessionKeys:  map[appUser]string{},
	}
}

// arrive counts a request as it arrives, before any wait; e.mu is held.
func (e *Engine) arrive(r *http.Request, body []byte) {
	q := r.URL.Query()
	if e.opts.Scripted && r.Method == http.MethodGet {
		switch r.URL.Path {
		case code2SessionPath:
			e.attempts[appCode{q.Get("appid"), q.Get("js_code")}]++
		case webTokenPath:
			e.webAttempts[appCode{q.Get("appid"), q.Get("code")}]++
		}
	}
	appid, code, secret, otherLogin := otherLogin(r, body)
	if e.opts.Scripted && otherLogin {
		e.attempts[appCode{appid, code}]++
	}
	if e.opts.Stateful {
		e.rec.arrive(r, q, body)
		if otherLogin {
			e.rec.codeCalls[code]++
			if secret != "" {
				e.rec.secrets = append(e.rec.secrets, secret)
			}
		}
	}
}

func (rec *recording) arrive(r *http.Request, q url.Values, body []byte) {
	rec.calls[r.URL.Path]++
	rec.secrets = append(rec.secrets, q["secret"]...)
	rec.secrets = append(rec.secrets, q["client_secret"]...) // Baidu's token
	switch {
	case r.Method == http.MethodGet && r.URL.Path == code2SessionPath:
		rec.codeCalls[q.Get("js_code")]++
	case r.URL.Path == douyinTokenPath, r.URL.Path == douyinClientTokenPath:
		var b struct {
			Secret       string `json:"secret"`
			ClientSecret string `json:"client_secret"`
		}
		if json.Unmarshal(body, &b) == nil {
			rec.secrets = append(rec.secrets, b.Secret+b.ClientSecret) // one of them is set
		}
	case r.URL.Path == douyinPhonePath:
		var b struct {
			Code string `json:"code"`
		}
		json.Unmarshal(body, &b) // a malformed body counts as code ""
		rec.phoneCalls[b.Code]++
	case r.URL.Path == stableTokenPath:
		var b struct {
			Secret *string `json:"secret"`
		}
		if json.Unmarshal(body, &b) == nil && b.Secret != nil {
			rec.secrets = append(rec.secrets, *b.Secret)
		}
	case r.URL.Path == phonePath:
		var b struct {
			Code string `json:"code"`
		}
		json.Unmarshal(body, &b) // a malformed body counts as code ""
		rec.phoneCalls[b.Code]++
	case r.Method == http.MethodGet && r.URL.Path == webTokenPath:
		code := q.Get("code")
		rec.webCodeCalls[code]++
		if user := WebUser(code); user != code {
			rec.webCodeCalls[user]++
		}
	}
}

// rejected counts a code2session call with code refused for its
// credentials or parameters.
func (e *Engine) rejected(code string) {
	if !e.opts.Stateful {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rec.codeRejected[code]++
}

// record runs f on the recording of a stateful engine, under its lock.
func (e *Engine) record(f func(*recording)) {
	if !e.opts.Stateful {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	f(&e.rec)
}

// recorded returns f of the recording, under its lock.
func recorded[T any](e *Engine, f func(*recording) T) T {
	e.mu.Lock()
	defer e.mu.Unlock()
	return f(&e.rec)
}

// Calls is how many requests reached path, e.g. "/sns/jscode2session".
func (e *Engine) Calls(path string) int {
	return recorded(e, func(rec *recording) int { return rec.calls[path] })
}

// CodeCalls is how many code2session calls carried js_code code, in any app
// (or code, for Douyin, Alipay and Baidu).
func (e *Engine) CodeCalls(code string) int {
	return recorded(e, func(rec *recording) int { return rec.codeCalls[code] })
}

// SecretsSeen is every secret received, in order: "secret" query values and
// stable_token's JSON "secret".
func (e *Engine) SecretsSeen() []string {
	return recorded(e, func(rec *recording) []string { return slices.Clone(rec.secrets) })
}

// LastSessionKey is the session_key of the newest successful login of openid
// in app appid, or "" if there was none.
func (e *Engine) LastSessionKey(appid, openid string) string {
	return recorded(e, func(rec *recording) string { return rec.sessionKeys[appUser{appid, openid}] })
}

// LoginStats sums up the code2session calls counted since the start or the
// last ResetCounters; its JSON is bench/fakeplatform's /stats.
type LoginStats struct {
	Calls           int `json:"calls"`          // code2session requests, the rejected ones aside
	DistinctCodes   int `json:"distinct_codes"` // distinct js_code values among them
	MaxCallsPerCode int `json:"max_calls_per_code"`
	CodesRepeated   int `json:"codes_repeated"` // codes asked more than once (a single-use code answers 40163)
	Rejected        int `json:"rejected"`       // refused for the appid, secret, grant_type or a missing code
}

// LoginStats is the summary of the code2session calls.
func (e *Engine) LoginStats() LoginStats {
	return recorded(e, func(rec *recording) LoginStats {
		var st LoginStats
		for code, calls := range rec.codeCalls {
			rejected := rec.codeRejected[code]
			st.Rejected += rejected
			n := calls - rejected
			if n <= 0 {
				continue
			}
			st.Calls += n
			st.DistinctCodes++
			st.MaxCallsPerCode = max(st.MaxCallsPerCode, n)
			if n > 1 {
				st.CodesRepeated++
			}
		}
		return st
	})
}

// ResetCounters zeroes the counters: Calls, CodeCalls, PhoneCalls,
// WebCodeCalls and LoginStats. What was recorded, and the codes and tokens
// issued or used, stay.
func (e *Engine) ResetCounters() {
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.rec.calls)
	clear(e.rec.codeCalls)
	clear(e.rec.codeRejected)
	clear(e.rec.phoneCalls)
	clear(e.rec.webCodeCalls)
}
