package platform

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
)

// request is one call to a platform API. Everything up to and including the
// errcode check is shared; each API method then only validates its own fields.
// A request is a GET with a query (method ""), a POST with a JSON body or a
// POST with a multipart body: body is kept as bytes so a retry can send it
// again.
type request struct {
	api    string     // short name used in errors, e.g. "code2session"
	method string     // "" means GET
	host   host       // the platform's host the API is on
	path   string     // e.g. "/sns/jscode2session"
	query  url.Values // may hold the secret: never formatted
	// accessToken is sent as the access_token query parameter, or in the
	// header tokenHeader, or as the JSON body's field tokenField. Like the
	// secret it is never formatted and is scrubbed from the platform's errmsg.
	accessToken string
	tokenHeader string
	tokenField  string
	// read says what the answer means; nil is readErrcode (WeChat's and
	// QQ's errcode).
	read        envelope
	body        []byte // a POST's body, sent again as is on a retry
	contentType string // body's Content-Type
	// failures says what this API's own errcodes mean (e.g. 40029 for a login
	// code); it takes precedence over commonFailures.
	failures map[int]failure
	// answers are errcodes that are results rather than failures (87014:
	// the content is risky). Their body is decoded into out like a success's,
	// and out reads the errcode itself.
	answers []int
	// noRetry is for billed calls (getuserphonenumber) that must never be sent
	// twice, not even after errcode -1.
	noRetry bool
	// image: the API answers an image on success and JSON only on failure
	// (getwxacodeunlimit); out must then be an *Image.
	image bool
}

// jsonRequest returns req as a POST of v as JSON. v is always plain data, so
// encoding cannot fail (invalid UTF-8 in a string becomes U+FFFD).
func jsonRequest(req request, v any) request {
	body, err := json.Marshal(v)
	if err != nil {
		panic("platform: cannot encode a request body: " + err.Error())
	}
	req.method = http.MethodPost
	req.body = body
	req.contentType = "application/json"
	return req
}

// status is the part of every WeChat and QQ answer that says whether the
// call worked. A success may carry errcode 0 or no errcode at all.
type status struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// envelope reads what a platform's answer body says: each platform (and
// some APIs) has its own way of telling a failure.
type envelope func(req request, app App, body []byte) verdict

// verdict is what an envelope read of an answer.
type verdict struct {
	payload []byte // decoded into the call's out on success: the body, or the part of it that is the answer
	outcome string // Exchange.Outcome: the platform's error code, "0" for a success
	err     *Error // the failure, nil for a success
	retry   bool   // the platform is busy: the call is sent once more (unless noRetry)
}

// readErrcode is the envelope of WeChat and QQ: errcode and errmsg at the
// top, absent or 0 for a success.
func readErrcode(req request, app App, body []byte) verdict {
	var st status
	if json.Unmarshal(body, &st) != nil {
		return notJSON(req.api)
	}
	v := verdict{payload: body, outcome: strconv.Itoa(st.Errcode)}
	if st.Errcode != 0 && !slices.Contains(req.answers, st.Errcode) {
		v.err = errcodeError(req.api, st.Errcode, st.Errmsg, req.failures, app.Secret, req.accessToken)
		v.err.tokenRefused = req.accessToken != "" && tokenRejected[st.Errcode]
		v.retry = st.Errcode == -1
	}
	return v
}

// notJSON is the verdict on an answer that is not JSON at all.
func notJSON(api string) verdict {
	return verdict{outcome: "bad_answer", err: unavailable(api, "the platform answered something that is not the expected JSON; try again later")}
}
