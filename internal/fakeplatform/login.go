package fakeplatform

import (
	"io"
	"net/http"
	"net/url"
	"time"
)

// SlowDelay is how long the scripted code "slow" takes to answer.
const SlowDelay = 10 * time.Second

// failureCodes maps each failure-simulating code to the answer it gets.
var failureCodes = map[string]failure{
	CodeInvalid: failInvalidCode,
	CodeUsed:    failCodeUsed,
	CodeBlocked: {40226, "high risk user, login blocked"},
	CodeBusy:    failBusy,
	CodeLimited: failLimited,
}

// code2Session serves /sns/jscode2session, the mini-program login.
func (e *Engine) code2Session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appid, code := q.Get("appid"), q.Get("js_code")
	if refused, rejected := e.refuse(w, r, codeExchange{appid, code, code, e.attempts, failInvalidCode}); refused {
		if rejected {
			e.rejected(code)
		}
		return
	}

	openid, sessionKey := OpenID(appid, code), SessionKey(appid, code)
	garbage := e.opts.Scripted && (code == CodeBadOpenID || code == CodeBadKey)
	if e.opts.Stateful {
		// Like the real platform, a code logs in once; the random
		// session_key lets tests tell one login from the next.
		sessionKey = randomSessionKey()
		e.mu.Lock()
		used := e.redeemed[appCode{appid, code}]
		e.redeemed[appCode{appid, code}] = true
		if !used && !garbage { // garbage answers: no session to remember
			e.rec.sessionKeys[appUser{appid, openid}] = sessionKey
		}
		e.mu.Unlock()
		if used {
			writeFailure(w, failCodeUsed)
			return
		}
	}

	answer := map[string]string{"openid": openid, "unionid": UnionID(code), "session_key": sessionKey}
	e.spoil(code, answer)
	writeJSON(w, http.StatusOK, answer)
}

// spoil makes a login answer (openid, unionid, session_key) into the
// garbage Options.Scripted's code asks for: badopenid, badkey, nounion.
func (e *Engine) spoil(code string, answer map[string]string) {
	if !e.opts.Scripted {
		return
	}
	switch code {
	case CodeBadOpenID:
		answer["openid"] = "../../etc"
	case CodeBadKey:
		answer["session_key"] = "short"
	case CodeNoUnion:
		delete(answer, "unionid")
	}
}

// codeExchange is a code exchange (mini program or web) being answered.
type codeExchange struct {
	appid, code string
	user        string          // whose identity the code is: code, or its WebUser
	attempts    map[appCode]int // Options.Scripted's attempts of this API
	noCode      failure         // the answer to a missing code, which differs by API
}

// refuse answers an exchange that cannot log in (bad credentials, a
// scripted code, a missing parameter, a failure code) and reports whether
// it did, and whether for the credentials or parameters (rejected).
func (e *Engine) refuse(w http.ResponseWriter, r *http.Request, x codeExchange) (refused, rejected bool) {
	q := r.URL.Query()
	if f, ok := e.checkApp(x.appid, q.Get("secret")); !ok {
		writeFailure(w, f)
		return true, true
	}
	if !e.scripted(w, r, x.user, func() bool { return e.firstAttempt(x.attempts, x.appid, x.code) }) {
		return true, false
	}
	if f, missing := missingParam(q, x.user, x.noCode); missing {
		writeFailure(w, f)
		return true, true
	}
	if f, isFailure := failureCodes[x.user]; isFailure {
		writeFailure(w, f)
		return true, false
	}
	return false, false
}

// missingParam is the answer to a code exchange (mini program or web) that
// lacks what every exchange must carry, and true; noCode is the platform's
// answer to a missing code, which differs by API.
func missingParam(q url.Values, code string, noCode failure) (failure, bool) {
	switch {
	case q.Get("appid") == "":
		return failInvalidAppID, true
	case q.Get("grant_type") != "authorization_code":
		// The real platform insists on it; catching it here catches client bugs.
		return failGrantType, true
	case code == "":
		return noCode, true
	}
	return failure{}, false
}

// fate is what becomes of a code exchange before any identity is made.
type fate int

const (
	fateGoOn     fate = iota // nothing scripted: the exchange goes on
	fateAnswered             // answered already (http500, garbage), or gone (slow, given up)
	fateQuota                // quota: the daily quota is used up
	fateBusy                 // busy, or busyonce on its first attempt
	fateInvalid              // invalid, used (the other platforms)
	fateLimited              // limited (the other platforms)
)

// scriptedFate answers Options.Scripted's codes that need no identity and
// no platform's shape (http500, garbage, slow) and says what becomes of the
// exchange (quota, busyonce on its first attempt).
func (e *Engine) scriptedFate(w http.ResponseWriter, r *http.Request, code string, firstAttempt func() bool) fate {
	if !e.opts.Scripted {
		return fateGoOn
	}
	switch code {
	case CodeHTTP500:
		writeHTTP500(w)
		return fateAnswered
	case CodeGarbage:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html>not json")
		return fateAnswered
	case CodeQuota:
		return fateQuota
	case CodeBusyOnce:
		if firstAttempt() {
			return fateBusy
		}
	case CodeSlow:
		if !e.wait(r.Context(), SlowDelay) {
			return fateAnswered
		}
	}
	return fateGoOn
}

// scripted answers Options.Scripted's codes that need no identity (http500,
// garbage, quota, busyonce on its first attempt, slow) as WeChat does, and
// reports whether the exchange goes on.
func (e *Engine) scripted(w http.ResponseWriter, r *http.Request, code string, firstAttempt func() bool) bool {
	switch e.scriptedFate(w, r, code, firstAttempt) {
	case fateAnswered:
		return false
	case fateQuota:
		writeFailure(w, failure{45009, "reach max api daily quota limit"})
		return false
	case fateBusy:
		writeFailure(w, failBusy)
		return false
	}
	return true
}
