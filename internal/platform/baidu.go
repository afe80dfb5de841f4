package platform

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Baidu's smart-program server APIs. A Baidu app is named by its App Key
// (the client_id of every call), not its numeric AppID: that is the appid
// configured for it. Login answers OAuth-style errors (error, with errno);
// the openapi.baidu.com APIs answer errno/msg, or error_code/error_msg at
// their gateway.
const (
	baiduCode2SessionPath = "/oauth/jscode2sessionkey"
	baiduTokenPath        = "/oauth/2.0/token"
	baiduTextCheckPath    = "/rest/2.0/smartapp/riskDetection/v2/syncCheckText"
)

// baiduAnswer is every error field Baidu's APIs answer.
type baiduAnswer struct {
	Errno     *int   `json:"errno"`
	Error     string `json:"error"` // an OAuth error code, e.g. invalid_grant
	ErrorDesc string `json:"error_description"`
	Msg       string `json:"msg"`
	ErrorCode int    `json:"error_code"` // openapi.baidu.com's gateway
	ErrorMsg  string `json:"error_msg"`
}

// baiduOAuthFailures are what the OAuth error codes of the login and token
// APIs mean.
var baiduOAuthFailures = map[string]failure{
	"invalid_grant": {InvalidCode, "the login code is invalid, expired or already used; call swan.getLoginCode again and post the new code"},
	"invalid_client": {Unavailable, "the platform rejected the app's credentials (invalid_client); the operator should check " +
		"that the app's appid is its App Key and its secret the App Secret"},
	"unauthorized_client": {Unavailable, "the platform says the app may not log users in (unauthorized_client); the operator should check the app in Baidu's console"},
}

// readBaiduOAuth is the envelope of Baidu's OAuth-style APIs (login,
// token): a failure has error (and errno); anything else is the answer.
func readBaiduOAuth(req request, app App, body []byte) verdict {
	var a baiduAnswer
	if json.Unmarshal(body, &a) != nil {
		return notJSON(req.api)
	}
	errno := 0
	if a.Errno != nil {
		errno = *a.Errno
	}
	if a.Error == "" && errno == 0 {
		return verdict{payload: body, outcome: "0"}
	}
	f, ok := baiduOAuthFailures[a.Error]
	if !ok {
		f = failure{Unavailable, "the platform answered error " + strconv.Quote(a.Error) + " (errno " + strconv.Itoa(errno) +
			"), which wxauth does not know; try again later"}
	}
	outcome := a.Error
	if outcome == "" {
		outcome = strconv.Itoa(errno)
	}
	return verdict{outcome: outcome, err: newError(req.api, errno, a.Error+": "+a.ErrorDesc, f, app.Secret, req.accessToken)}
}

// baiduCode2Session exchanges a swan.getLoginCode code (jscode2sessionkey),
// posted as a form.
func (c *Client) baiduCode2Session(ctx context.Context, app App, code string) (*Session, error) {
	const api = "code2session"
	form := url.Values{"code": {code}, "client_id": {app.AppID}, "sk": {app.Secret}}
	req := request{api: api, method: http.MethodPost, path: baiduCode2SessionPath, body: []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded", read: readBaiduOAuth}
	var answer struct {
		OpenID     string `json:"openid"`
		SessionKey string `json:"session_key"`
	}
	if err := c.call(ctx, app, req, &answer); err != nil {
		return nil, err
	}
	// Baidu's session_key is the AES key of its encrypted data: 24 bytes
	// (AES-192) as documented; any AES size is taken.
	return checkedSession(api, answer.OpenID, "", answer.SessionKey, 16, 24, 32)
}

// baiduTokenSource is the app's access_token (openapi.baidu.com's
// client_credentials grant), for the content check.
var baiduTokenSource = tokenSource{api: "baidu_token", fetch: func(c *Client, ctx context.Context, app App) (string, time.Duration, error) {
	const api = "baidu_token"
	req := request{api: api, method: http.MethodPost, host: openHost, path: baiduTokenPath, read: readBaiduOAuth,
		query: url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {app.AppID},
			"client_secret": {app.Secret},
			"scope":         {"smartapp_snsapi_base"},
		}}
	var answer tokenAnswer
	if err := c.call(ctx, app, req, &answer); err != nil {
		return "", 0, err
	}
	return checkedToken(api, answer.AccessToken, answer.ExpiresIn)
}}

// baiduTokenRefused are openapi.baidu.com's gateway codes for a bad
// access_token (110: invalid, 111: expired).
var baiduTokenRefused = map[int]failure{
	110: {Unavailable, "the platform refused the app's access_token (error_code 110) even after it was refreshed; try again later"},
	111: {Unavailable, "the app's access_token expired (error_code 111) even after it was refreshed; try again later"},
}

// readBaiduOpenAPI is the envelope of openapi.baidu.com's REST APIs: errno
// 0 (and no error_code) is a success.
func readBaiduOpenAPI(req request, app App, body []byte) verdict {
	var a baiduAnswer
	if json.Unmarshal(body, &a) != nil {
		return notJSON(req.api)
	}
	if a.ErrorCode != 0 {
		e := tableError(req.api, a.ErrorCode, a.ErrorMsg, baiduTokenRefused, app.Secret, req.accessToken)
		_, refused := baiduTokenRefused[a.ErrorCode]
		e.tokenRefused = req.accessToken != "" && refused
		return verdict{outcome: strconv.Itoa(a.ErrorCode), err: e}
	}
	if a.Errno == nil {
		return notJSON(req.api)
	}
	if *a.Errno != 0 {
		return verdict{outcome: strconv.Itoa(*a.Errno), err: tableError(req.api, *a.Errno, a.Msg, nil, app.Secret, req.accessToken)}
	}
	return verdict{payload: body, outcome: "0"}
}

// baiduCheckText is Baidu's text check (riskDetection v2 syncCheckText,
// type risk): risky when a result's errno is not 0.
func (s *Service) baiduCheckText(ctx context.Context, app App, content string) (Verdict, error) {
	const api = "syncCheckText"
	req := jsonRequest(request{api: api, host: openHost, path: baiduTextCheckPath, read: readBaiduOpenAPI},
		struct {
			Content string   `json:"content"`
			Type    []string `json:"type"`
		}{content, []string{"risk"}})
	var answer struct {
		Data *struct {
			Res []struct {
				Type  string `json:"type"`
				Errno int    `json:"errno"`
			} `json:"res"`
		} `json:"data"`
	}
	if err := s.call(ctx, app, req, &answer); err != nil {
		return Verdict{}, err
	}
	if answer.Data == nil || len(answer.Data.Res) == 0 {
		return Verdict{}, unavailable(api, "the platform's text check answered without a result; try again later")
	}
	for _, r := range answer.Data.Res {
		if r.Errno != 0 {
			return Verdict{Suggest: SuggestRisky}, nil
		}
	}
	return Verdict{Suggest: SuggestPass}, nil
}
