package fakeplatform

import (
	"net/http"
	"slices"
)

// WebScope is the scope of a web login whose code no authorize page issued,
// and of every sandbox web login: the exchange does not carry the scope the
// authorize page asked for, and the sandbox grants everything, so
// /sns/userinfo always answers.
const WebScope = "snsapi_userinfo"

// webGrant is what a web access_token was issued for.
type webGrant struct {
	user, openid, scope string
	noUnion             bool
	state               tokenState
}

// webAccessToken serves /sns/oauth2/access_token, the web login's code
// exchange.
func (e *Engine) webAccessToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	appid, code := q.Get("appid"), q.Get("code")
	// The identity is the user's; a stateful authorize page issued a
	// fresh code for them.
	user := code
	if e.opts.Stateful {
		user = WebUser(code)
	}
	if refused, _ := e.refuse(w, r, codeExchange{appid, code, user, e.webAttempts, failure{41008, "missing code"}}); refused {
		return
	}

	grant := webGrant{user: user, openid: OpenID(appid, user), scope: WebScope, noUnion: e.opts.Scripted && user == CodeNoUnion}
	token, refresh := WebAccessToken(appid, user), webRefreshToken(appid, user)
	if e.opts.Stateful {
		token, refresh = randomToken(), randomToken()
		key := appCode{appid, code}
		e.mu.Lock()
		used := e.webRedeemed[key]
		if !used {
			e.webRedeemed[key] = true
			if scope := e.webScopes[key]; scope != "" {
				grant.scope = scope
			}
			e.webTokens[token] = &grant
			e.rec.webSecrets = append(e.rec.webSecrets, token, refresh)
		}
		e.mu.Unlock()
		if used {
			writeFailure(w, failCodeUsed)
			return
		}
	}

	answer := map[string]any{
		"access_token":  token,
		"expires_in":    TokenExpiresIn,
		"refresh_token": refresh,
		"openid":        grant.openid,
		"scope":         grant.scope,
		"unionid":       UnionID(user),
	}
	if e.opts.Scripted && user == CodeBadOpenID {
		answer["openid"] = "../../etc"
	}
	if grant.noUnion {
		delete(answer, "unionid")
	}
	writeJSON(w, http.StatusOK, answer)
}

// webGrant is what token was issued for, or the answer to a token that is
// missing, unknown or no longer valid, and false.
func (e *Engine) webGrant(token string) (webGrant, failure, bool) {
	if e.opts.Stateful {
		g, found := lookUp(e, e.webTokens, token)
		if f, bad := tokenRefusal(found, g.state); bad {
			return webGrant{}, f, false
		}
		return g, failure{}, true
	}
	if token == "" {
		return webGrant{}, failNoToken, false
	}
	appid, code, ok := parseWebAccessToken(token)
	if !ok {
		return webGrant{}, failBadToken, false
	}
	return webGrant{user: code, openid: OpenID(appid, code), scope: WebScope}, failure{}, true
}

// webUserInfo serves /sns/userinfo: the profile of the user a web
// access_token was issued for.
func (e *Engine) webUserInfo(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g, f, ok := e.webGrant(q.Get("access_token"))
	switch {
	case !ok:
	case q.Get("openid") == "":
		f = failure{41009, "missing openid"}
	case q.Get("openid") != g.openid:
		f = failBadOpenID
	case g.scope == "snsapi_base":
		f = failure{48001, "api unauthorized"}
	default:
		writeJSON(w, http.StatusOK, e.profile(g))
		return
	}
	writeFailure(w, f)
}

// profile is /sns/userinfo's answer for g: the sandbox's user has a
// nickname and nothing else, Options.Scripted's a full profile.
func (e *Engine) profile(g webGrant) map[string]any {
	answer := map[string]any{
		"openid":     g.openid,
		"nickname":   Nickname(g.user),
		"sex":        0,
		"province":   "",
		"city":       "",
		"country":    "",
		"headimgurl": "",
		"privilege":  []string{},
		"unionid":    UnionID(g.user),
	}
	if e.opts.Scripted {
		answer["nickname"], answer["headimgurl"] = WebNickname(g.user), WebHeadImgURL(g.user)
		answer["sex"], answer["province"], answer["city"], answer["country"] = 1, "Guangdong", "Guangzhou", "CN"
	}
	if g.noUnion {
		delete(answer, "unionid")
	}
	return answer
}

// WebCodeCalls is how many /sns/oauth2/access_token calls carried code, in
// any app. The calls with a code the authorize page issued ("alice~3") also
// count as calls with the user's ("alice").
func (e *Engine) WebCodeCalls(code string) int {
	return recorded(e, func(rec *recording) int { return rec.webCodeCalls[code] })
}

// WebTokens is every web access_token and refresh_token a stateful engine
// issued, in order: the user's secrets, which tests can look for where they
// must not be.
func (e *Engine) WebTokens() []string {
	return recorded(e, func(rec *recording) []string { return slices.Clone(rec.webSecrets) })
}
