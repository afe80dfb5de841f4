package platform

import (
	"bytes"
	"context"
	"strings"
)

const wxaCodeAPI = "getwxacodeunlimit"

// MaxScene is the longest scene getwxacodeunlimit takes: 32 visible
// characters.
const MaxScene = 32

// The env_version values of getwxacodeunlimit: which version of the mini
// program the code opens.
const (
	EnvRelease = "release"
	EnvTrial   = "trial"
	EnvDevelop = "develop"
)

// CodeRequest is what a mini-program code opens: Page (no leading "/", no
// query; "" for the app's home page) of the EnvVersion ("" for release)
// of the mini program, with Scene as its query's scene.
type CodeRequest struct {
	Scene      string
	Page       string
	EnvVersion string
}

// Image is an image the platform made.
type Image struct {
	ContentType string // image/jpeg or image/png, from the bytes
	Data        []byte
}

// wxaCodeBody is the JSON body of getwxacodeunlimit. env_version is left
// out rather than sent empty (an empty one is errcode 40097), and so is
// page for the home page.
type wxaCodeBody struct {
	Scene      string `json:"scene"`
	Page       string `json:"page,omitempty"`
	CheckPath  bool   `json:"check_path"`
	EnvVersion string `json:"env_version,omitempty"`
}

// wxaCodeFailures are getwxacodeunlimit's own errcodes. Each is the
// operator's to fix (or ours), never the user's: they are Unavailable.
var wxaCodeFailures = map[int]failure{
	41030: {Unavailable, "the platform says the mini-program page of scan_login does not exist in the published version " +
		"(errcode 41030); the operator should check the page (no leading '/', no query), publish it, or set the env_version it is in"},
	40097: {Unavailable, "the platform refused the mini-program code's arguments (errcode 40097); the operator should check scan_login's page and env_version"},
	40129: {Unavailable, "the platform refused the scene of the mini-program code (errcode 40129); try again"},
	40169: {Unavailable, "the platform refused the scene of the mini-program code (errcode 40169); try again"},
	48001: {Unavailable, "the platform does not let this app make mini-program codes (errcode 48001, api unauthorized); " +
		"the operator should check that the appid is a published WeChat mini program"},
	45009: {Unavailable, "the app reached the platform's limit on mini-program codes (errcode 45009); try again in a minute"},
}

// UnlimitedCode asks getwxacodeunlimit for the mini-program code (an
// image) that opens req's page with req's scene. Codes of a version that
// is not the released one are made without checking the page
// (check_path false): the page may not be published yet.
func (s *Service) UnlimitedCode(ctx context.Context, app App, req CodeRequest) (*Image, error) {
	switch {
	case app.Kind != WeChat && app.Kind != "":
		return nil, &Error{Code: Unsupported, API: wxaCodeAPI,
			Message: "only WeChat mini programs have mini-program codes (getwxacodeunlimit)"}
	case !ValidScene(req.Scene):
		return nil, &Error{Code: Unsupported, API: wxaCodeAPI,
			Message: "a mini-program code's scene is 1 to 32 characters of [0-9A-Za-z] and !#$&'()*+,/:;=?@-._~"}
	}
	env := req.EnvVersion
	if env == EnvRelease {
		env = ""
	}
	r := jsonRequest(request{api: wxaCodeAPI, path: "/wxa/getwxacodeunlimit", failures: wxaCodeFailures, image: true},
		wxaCodeBody{Scene: req.Scene, Page: strings.TrimPrefix(req.Page, "/"), CheckPath: env == "", EnvVersion: env})
	var img Image
	if err := s.call(ctx, app, r, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// ValidScene reports whether s may be a mini-program code's scene.
func ValidScene(s string) bool {
	if s == "" || len(s) > MaxScene {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$&'()*+,/:;=?@-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// imageType is the type the bytes say they are: "image/jpeg", "image/png",
// or "" for neither. An image answer is told from a JSON error by its
// bytes, not its Content-Type: the platform labels JSON as text/plain
// (or image/ on some proxies), and a code is a JPEG, or a PNG with
// is_hyaline.
func imageType(body []byte) string {
	switch {
	case bytes.HasPrefix(body, []byte{0xFF, 0xD8, 0xFF}):
		return "image/jpeg"
	case bytes.HasPrefix(body, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	}
	return ""
}
