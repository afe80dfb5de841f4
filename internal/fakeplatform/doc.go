// Package fakeplatform is a fake of the server APIs of WeChat and QQ, and of
// Douyin, Alipay and Baidu mini programs: one
// engine, an http.Handler, that serves the plugin's sandbox mode in-process
// (Sandbox, Transport), the tests over loopback (NewServer) and the
// benchmarks as a process of its own (bench/fakeplatform).
//
// # The sandbox
//
// New(Options{}), or Sandbox(), is the fake of the plugin's sandbox mode. It
// keeps no state: every answer follows from the request. The request's host
// is ignored, so it serves the WeChat and QQ bases alike. Like the real
// platform, errcode answers come with HTTP 200; unknown paths get a 404 with a
// JSON body.
//
// Identities are derived from the login code, so a developer can log in as
// "alice" from any device and always be the same user: OpenID(appid, code),
// UnionID(code), SessionKey(appid, code). A few codes simulate platform
// failures:
//
//	invalid  errcode 40029 (invalid code)
//	used     errcode 40163 (code already used)
//	blocked  errcode 40226 (high-risk user, login blocked)
//	busy     errcode -1 (system busy), every time
//	limited  errcode 45011 (frequency limit)
//
// Every other non-empty code logs in. Any secret is accepted (until AddApp).
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
//	POST /wxa/getwxacodeunlimit
//	    the mini-program code of a scene: a real QR code (PNG, CodePNG)
//	    whose text is CodeContent(page, scene), so that a test or a phone
//	    can read which ticket it is for; a scene that is empty or over 32
//	    characters gets errcode 40169, an unknown env_version 40097
//
// Access tokens are only checked for being present (errcode 40001 when
// missing). Like login codes, phone codes can be used again and again.
//
// Web logins (wechat-web, wechat-qr) work the same way:
//
//	GET /connect/oauth2/authorize, GET /connect/qrconnect
//	    the authorize page (Engine.Authorize): it redirects straight back to
//	    redirect_uri with code and state, the code being the query
//	    parameter sandbox_user (WebUserParam), or DefaultWebUser ("alice")
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
// # Douyin, Alipay and Baidu
//
// Their paths differ from WeChat's and from one another's, so the engine
// serves them all on one host, each answering in its platform's own shape:
//
//	POST /api/apps/v2/jscode2session (Douyin, JSON)
//	    err_no 40015/40017 for a bad appid/secret (AddApp), 40014 without
//	    code or anonymous_code; data{openid, unionid, session_key}
//	POST /api/apps/v2/token, POST /oauth/client_token/ (Douyin)
//	    the app's access_token, and its client_token ("clt." + a token)
//	POST /api/v2/tags/text/antidirt (X-Token), /api/apps/censor/image
//	    (access_token in the body) (Douyin): predicts hit for RiskyMarker
//	POST /api/apps/v1/get_phonenumber_info/ (Douyin, access-token: a
//	    client_token): data is PhoneNumber's JSON encrypted (RSA PKCS #1
//	    v1.5) with the app's public key
//	POST /gateway.do (Alipay): checks the request's RSA2 sign with the
//	    app's public key, its charset, version and Beijing-time timestamp
//	    (within 15 minutes), then answers alipay.system.oauth.token
//	    (open_id OpenID(appid, code); AlipayCodeUserID gives user_id,
//	    AlipayCodeBothIDs both) and alipay.security.risk.content.detect
//	    (REJECTED for RiskyMarker), the member signed with Alipay's key
//	POST /oauth/jscode2sessionkey (Baidu, form: code, client_id, sk):
//	    openid, a 24-byte session_key; OAuth errors (invalid_client,
//	    invalid_grant, invalid_request)
//	POST /oauth/2.0/token, /rest/2.0/smartapp/riskDetection/v2/syncCheckText
//	    (Baidu): the token (client_credentials) and the text check (a
//	    risky text's result has errno 1; a bad token error_code 110/111)
//
// The keys are SandboxKeys: the app's pair (SetAppPublicKey registers
// another) and Alipay's. The failure codes answer as each platform would:
// invalid and used its invalid-code error (none of the three has a code
// for a used code), busy its busy error (Baidu, which documents none: HTTP
// 503), limited an HTTP 429 (none documents a rate-limit answer); blocked
// is an ordinary code, since none of them refuses a high-risk user the way
// WeChat's 40226 does. Alipay apps have no secret: AddApp(appid, "").
//
// A sandbox web access_token carries the appid and code it was issued for,
// so /sns/userinfo answers for the right user without keeping any state.
// Web codes, like login codes, can be used again and again.
//
// # What the options add
//
// Options.Stateful makes the engine behave like the real platform where the
// sandbox is lenient, and remember what tests and benchmarks ask about:
// codes are single-use, session_keys and tokens are fresh and random, only
// the tokens issued are accepted, and every call is counted and recorded.
// Options.Scripted adds the tests' scripted codes and web users. The state
// every engine has, which only its methods change, makes faults: AddApp
// (credentials checked), SetDelay, FailPath, Close. The fields of Options
// say what each changes, API by API.
//
// NewServer starts the engine with both options on an httptest server, for
// tests; bench/fakeplatform serves a stateful one with a registered app and
// a delay, for the benchmarks.
package fakeplatform
