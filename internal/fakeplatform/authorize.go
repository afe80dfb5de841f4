package fakeplatform

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// The authorize pages' users.
const (
	// WebUserParam is the sandbox authorize page's query parameter that
	// picks the code, and so the user, a developer logs in as.
	WebUserParam = "sandbox_user"
	// DefaultWebUser is the code the sandbox authorize page gives without
	// WebUserParam.
	DefaultWebUser = "alice"
	// FakeUserParam is the query parameter naming the user an
	// Options.Scripted authorize page's code logs in.
	FakeUserParam = "fake_user"
	// ScriptedWebUser is the user an Options.Scripted authorize page's
	// codes log in without FakeUserParam or SetAuthorizeCode.
	ScriptedWebUser = "webuser"
)

// maxWebCode bounds the code the authorize page gives: the plugin's client
// refuses longer codes without a call.
const maxWebCode = 256

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

// Authorize is the engine's authorize page, for /connect/oauth2/authorize
// and /connect/qrconnect alike. Only a stateful engine looks at the path (to
// check the scope), so a sandbox's also serves as a handler wherever the
// plugin puts its own copy of the page.
//
// It checks the parameters the real page needs (appid; redirect_uri, an
// absolute http(s) URL; response_type=code; scope snsapi_base,
// snsapi_userinfo or snsapi_login; state, 1 to 128 letters and digits) and
// redirects straight back (302) to redirect_uri with code and state added to
// its query, which is otherwise kept (earlier code and state parameters
// excepted). In the sandbox the code is the query parameter sandbox_user
// (WebUserParam) when present, else DefaultWebUser: a developer picks who to
// log in as, and a failure code ("invalid", "blocked", ...) simulates that
// failure. (Options says what the others do.) A bad request gets a 400 with
// a plain-text explanation, where the real page shows an error page.
//
// Unlike the real page, which only sends the browser back to the domain
// configured for the app, it redirects to whatever redirect_uri it is given:
// a caller serving it on a public address may want to check redirect_uri
// first.
func (e *Engine) Authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "sandbox authorize page: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	req := AuthorizeRequest{
		Path:         r.URL.Path,
		AppID:        q.Get("appid"),
		RedirectURI:  q.Get("redirect_uri"),
		ResponseType: q.Get("response_type"),
		Scope:        q.Get("scope"),
		State:        q.Get("state"),
		RawQuery:     r.URL.RawQuery,
	}
	defer func() {
		e.record(func(rec *recording) { rec.authorizeReqs = append(rec.authorizeReqs, req) })
	}()

	problem, code := e.strictProblem(req), ""
	if problem == "" {
		code = e.authorizeCode(q)
		problem = authorizeProblem(q, code)
	}
	if problem != "" {
		http.Error(w, "sandbox authorize page: "+problem, http.StatusBadRequest)
		return
	}
	if e.opts.Stateful {
		e.mu.Lock()
		e.webScopes[appCode{req.AppID, code}] = req.Scope
		e.mu.Unlock()
	}
	req.Code = code
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, withCodeAndState(req.RedirectURI, code, req.State), http.StatusFound)
}

// strictProblem says what a stateful page refuses that the sandbox's takes,
// or "": the wrong scope for the page, an appid AddApp did not register.
func (e *Engine) strictProblem(req AuthorizeRequest) string {
	switch {
	case !e.opts.Stateful:
	case strings.HasSuffix(req.Path, qrConnectPath) && req.Scope != "snsapi_login":
		return "qrconnect takes only scope snsapi_login"
	case strings.HasSuffix(req.Path, authorizePath) && req.Scope != "snsapi_base" && req.Scope != "snsapi_userinfo":
		return "oauth2/authorize takes only scope snsapi_base or snsapi_userinfo"
	}
	if !e.knownApp(req.AppID) {
		return "unknown appid"
	}
	return ""
}

// authorizeCode is the code the page redirects with: the user named in the
// query, else SetAuthorizeCode's, else the default one; a stateful engine
// makes it a fresh code for that user.
func (e *Engine) authorizeCode(q url.Values) string {
	param, user := WebUserParam, DefaultWebUser
	if e.opts.Scripted {
		param, user = FakeUserParam, ScriptedWebUser
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if named := q.Get(param); named != "" {
		user = named
	} else if e.authorizeUser != "" {
		user = e.authorizeUser
	}
	if !e.opts.Stateful {
		return user
	}
	e.webCodeSeq++
	return user + webCodeSeparator + strconv.Itoa(e.webCodeSeq)
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

// SetAuthorizeCode makes the authorize pages' later codes log in user when
// the request names none; "" restores the default user. A stateful engine's
// codes are still fresh ones ("<user>~<n>").
func (e *Engine) SetAuthorizeCode(user string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.authorizeUser = user
}

// AuthorizeRequests is every request a stateful engine's authorize pages
// answered (those failed by FailPath are only counted by Calls), in order.
func (e *Engine) AuthorizeRequests() []AuthorizeRequest {
	return recorded(e, func(rec *recording) []AuthorizeRequest { return slices.Clone(rec.authorizeReqs) })
}
