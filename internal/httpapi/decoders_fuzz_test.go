package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
)

// fuzzContentTypes are what a client may send as Content-Type; the low four
// bits of the fuzzed mode byte pick one. A fixed set, because the fuzzer
// would otherwise spend its time inventing media types that all fail the
// same way.
var fuzzContentTypes = [16]string{
	"application/json",
	"application/json; charset=utf-8",
	"APPLICATION/JSON ; charset=UTF-8",
	"application/json;",
	"",
	"text/plain",
	"application/x-www-form-urlencoded",
	"application/json; charset", // a parameter without a value: unparsable
	"multipart/form-data; boundary=B",
	`multipart/form-data; boundary="quoted boundary"`,
	"multipart/form-data",
	"multipart/form-data; boundary=",
	"multipart/form-data; boundary=B; boundary=C", // a duplicate parameter: unparsable
	"multipart/mixed; boundary=B",
	"application/json, text/plain",
	"application/jsonx",
}

// fuzzMethods: bits 4-6 of the mode byte pick one; mostly POST, since that
// is the only method that gets past the first check.
var fuzzMethods = [8]string{
	http.MethodPost, http.MethodPost, http.MethodPost, http.MethodPost,
	http.MethodPost, http.MethodPost, http.MethodGet, "post",
}

// padMarker in a fuzzed body stands for more padding (spaces) than the
// endpoint's body limit when bit 7 of the mode byte is set, so the
// body_too_large paths are reachable without the fuzzer writing megabytes.
// Only its first occurrence counts. The bit keeps many mutants of a padded
// seed cheap: a padded iteration costs as much as 25 (JSON) to 150
// (multipart) plain ones.
const padMarker = "<pad>"

// padding is shared read-only by every iteration: one allocation for the
// whole run instead of a megabyte per padded input.
var padding = bytes.Repeat([]byte{' '}, maxMultipartBody+1)

// Mode bytes of the seeds.
const (
	modeJSON        = 0x00 // POST, application/json
	modeJSONCharset = 0x01 // POST, application/json; charset=utf-8
	modeTextPlain   = 0x05 // POST, text/plain
	modeMultipart   = 0x08 // POST, multipart/form-data; boundary=B
	modeNoBoundary  = 0x0a // POST, multipart/form-data
	modeGET         = 0x60 // GET, application/json
	modePadded      = 0x80 // with any of the above: padMarker is padding
)

// fuzzRequest builds the request the mode byte and body describe: bits 0-3
// pick the Content-Type, 4-6 the method, 7 turns on padding. It says
// whether the body is longer than limit.
func fuzzRequest(mode byte, body []byte, limit int) (r *http.Request, padded bool) {
	var rd io.Reader = bytes.NewReader(body)
	if before, after, ok := bytes.Cut(body, []byte(padMarker)); ok && mode&0x80 != 0 {
		rd = io.MultiReader(bytes.NewReader(before), bytes.NewReader(padding[:limit+1]), bytes.NewReader(after))
		padded = true
	}
	r = httptest.NewRequest(fuzzMethods[mode>>4&7], "http://example.com/wx/login", rd)
	if ct := fuzzContentTypes[mode&15]; ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	return r, padded || len(body) > limit
}

// jsonFieldNames are the names a client may send for the fields of a
// request struct, embedded structs included.
func jsonFieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			names = append(names, jsonFieldNames(f.Type)...)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names = append(names, name)
		}
	}
	return names
}

// decodeJSONMessages are every message decodeJSON can answer for a request
// of type v. Checking messages against a closed list is how the fuzz tests
// know no message echoes the body: a new message belongs here once it is
// known to be fixed text.
func decodeJSONMessages(v any) map[string]bool {
	msgs := map[string]bool{
		errMethod(http.MethodPost).Message:       true,
		errMediaType("application/json").Message: true,
		errBodyTooLarge(maxJSONBody).Message:     true,
		"the body must be a single JSON object":  true,
		"the body is empty; send a JSON object":  true,
		"the body must be a JSON object":         true,
		"the body is not valid JSON":             true,
	}
	for _, name := range jsonFieldNames(reflect.TypeOf(v).Elem()) {
		msgs[`field "`+name+`" must be a string`] = true
	}
	return msgs
}

// checkContractError fails t unless e is a row of the contract's table
// that a request decoder may answer, with a message from msgs.
func checkContractError(t *testing.T, e *apiError, msgs map[string]bool) {
	t.Helper()
	switch {
	case e.Status == http.StatusBadRequest && e.Code == "invalid_request":
	case e.Status == http.StatusMethodNotAllowed && e.Code == "invalid_request" && e.Allow == http.MethodPost:
	case e.Status == http.StatusRequestEntityTooLarge && e.Code == "body_too_large":
	case e.Status == http.StatusUnsupportedMediaType && e.Code == "unsupported_media_type":
	default:
		t.Fatalf("error %d %q (allow %q) is not a decoder's row of the contract's table", e.Status, e.Code, e.Allow)
	}
	if !msgs[e.Message] {
		t.Fatalf("message %q is not one of the decoder's fixed messages", e.Message)
	}
}

// checkDecodeJSON runs decodeJSON into a fresh value of v's type and checks
// its answer against what the request should get: the method and media
// type checks first, then exactly encoding/json's verdict on the body.
func checkDecodeJSON(t *testing.T, mode byte, body []byte, v any, msgs map[string]bool) {
	t.Helper()
	r, padded := fuzzRequest(mode, body, maxJSONBody)
	got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	e := decodeJSON(httptest.NewRecorder(), r, got)

	mt, _, mtErr := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case r.Method != http.MethodPost:
		if e == nil || e.Status != http.StatusMethodNotAllowed {
			t.Fatalf("%s request: got %+v, want 405", r.Method, e)
		}
	case mtErr != nil || mt != "application/json":
		if e == nil || e.Status != http.StatusUnsupportedMediaType {
			t.Fatalf("Content-Type %q: got %+v, want 415", r.Header.Get("Content-Type"), e)
		}
	case padded:
		// Decoding stops at the first syntax error, which may come
		// before the limit; but a body over the limit is never accepted.
		if e == nil {
			t.Fatal("a body over the limit was accepted")
		}
	default:
		want := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		wantErr := json.Unmarshal(body, want)
		if (e == nil) != (wantErr == nil) {
			t.Fatalf("decodeJSON: %+v; encoding/json: %v", e, wantErr)
		}
		if e == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeJSON gave %+v, encoding/json %+v", got, want)
		}
		if e != nil && e.Status != http.StatusBadRequest {
			t.Fatalf("a bad body under the limit got %d, want 400", e.Status)
		}
	}
	if e != nil {
		checkContractError(t, e, msgs)
	}
}

// FuzzLoginRequestDecoder fuzzes the decoding of POST /wx/login: method,
// Content-Type (chosen by mode) and body.
func FuzzLoginRequestDecoder(f *testing.F) {
	for _, seed := range []struct {
		mode byte
		body string
	}{
		{modeJSON, `{"code":"0a1b2c3d4e5f"}`},
		{modeJSONCharset, `{"code":"0a1b2c3d4e5f","appid":"wx1234567890abcdef"}`},
		{modeJSON, `{"code":"c","encrypted_data":"CiyLU1Aw2Kjvr","iv":"r7BXXKkLb8qrSNn05n0qiA==","raw_data":"{\"nickName\":\"Band\"}","signature":"75e81ceda165f4ffa64f4068af58c64b8f54b88c"}`},
		{modeJSON, `{"CODE":"upper","Code":"mixed","code":"last"}`},
		{modeJSON, `{"code":1}`},
		{modeJSON, `{"iv":["a"]}`},
		{modeJSON, `[]`},
		{modeJSON, `null`},
		{modeJSON, ``},
		{modeJSON, ` `},
		{modeJSON, `{"code":"a"}{"code":"b"}`},
		{modeJSON, `{"code":"a"} x`},
		{modeJSON, `{"code":"a"`},
		{modeJSON, "{\"code\":\"\\ud800\\u00e9\xff\"}"}, // a lone surrogate, an escape, invalid UTF-8
		{modeJSON | modePadded, `{"code":"` + padMarker + `"}`},
		{modeJSON | modePadded, `{"code":"a"}` + padMarker},
		{modeJSON, `{"code":"` + padMarker + `"}`}, // padding off: a plain code
		{modeTextPlain, `{"code":"a"}`},
		{modeGET, `{"code":"a"}`},
	} {
		f.Add(seed.mode, []byte(seed.body))
	}
	msgs := decodeJSONMessages(&loginRequest{})
	f.Fuzz(func(t *testing.T, mode byte, body []byte) {
		checkDecodeJSON(t, mode, body, &loginRequest{}, msgs)
	})
}

// avatarUploadMessages are every message readAvatarUpload can answer.
var avatarUploadMessages = map[string]bool{
	errBodyTooLarge(avatar.MaxSize).Message:                                   true,
	errBodyTooLarge(maxMultipartBody).Message:                                 true,
	"the multipart body has no boundary; let wx.uploadFile build the request": true,
	"the multipart body is malformed; let wx.uploadFile build the request":    true,
	`"nickname" is too long`:                                                  true,
	`send one "avatar" file`:                                                  true,
}

// FuzzProfileRequestDecoder fuzzes the decoding of POST /wx/profile, which
// takes JSON or a multipart upload depending on the Content-Type, as
// serveProfile dispatches it.
func FuzzProfileRequestDecoder(f *testing.F) {
	part := func(name, filename, content string) string {
		disposition := `form-data; name="` + name + `"`
		if filename != "" {
			disposition += `; filename="` + filename + `"`
		}
		return "--B\r\nContent-Disposition: " + disposition + "\r\n\r\n" + content + "\r\n"
	}
	const end = "--B--\r\n"
	png := "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
	for _, seed := range []struct {
		mode byte
		body string
	}{
		{modeJSON, `{"nickname":"小明","avatar_url":"https://thirdwx.qlogo.cn/mmopen/vi_32/a/132"}`},
		{modeJSON, `{"nickname":null}`},
		{modeJSON, `{"nickname":""}`},
		{modeJSON, `{"avatar_url":7}`},
		{modeJSON, `{"encrypted_data":"CiyLU1Aw2Kjvr","iv":"r7BXXKkLb8qrSNn05n0qiA=="}`},
		{modeJSON | modePadded, `{"nickname":"` + padMarker + `"}`},
		{modeMultipart, part("nickname", "", "小明") + part("avatar", "a.png", png) + end},
		{modeMultipart, part("avatar", "a.png", png) + end},
		{modeMultipart, part("nickname", "", "only a name") + end},
		{modeMultipart, part("avatar", "a.png", "") + end},
		{modeMultipart, part("avatar", "a.png", png) + part("avatar", "b.png", png) + end},
		{modeMultipart, part("nickname", "", strings.Repeat("n", 4<<10+1)) + end},
		{modeMultipart | modePadded, part("avatar", "a.png", padMarker) + end},
		{modeMultipart | modePadded, part("nickname", "", padMarker) + end},
		{modeMultipart | modePadded, part("other", "", padMarker) + end},
		{modeMultipart | modePadded, part("nickname", "", "n") + end + padMarker}, // padding after the closing boundary, where the reader stops
		{modeMultipart, "preamble\r\n" + part("extra", "x.txt", "skipped") + part("nickname", "", "n") + end + "epilogue"},
		{modeMultipart, "--B\r\nContent-Disposition: form-data; name=\"nickname\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=E5=B0=8F\r\n" + end},
		{modeMultipart, part("nickname", "", "no end")},
		{modeMultipart, "--B\r\nno headers end"},
		{modeMultipart, ""},
		{modeNoBoundary, part("nickname", "", "n") + end},
	} {
		f.Add(seed.mode, []byte(seed.body))
	}
	msgs := decodeJSONMessages(&profileRequest{})
	wantBase := "http://example.com/wx/avatar/"
	f.Fuzz(func(t *testing.T, mode byte, body []byte) {
		mt, params, _ := mime.ParseMediaType(fuzzContentTypes[mode&15])
		if mt != "multipart/form-data" {
			checkDecodeJSON(t, mode, body, &profileRequest{}, msgs)
			return
		}
		r, _ := fuzzRequest(mode, body, maxMultipartBody)
		change, e := readAvatarUpload(httptest.NewRecorder(), r, params["boundary"], wantBase)
		if e != nil {
			checkContractError(t, e, avatarUploadMessages)
			return
		}
		if change.Nickname != nil && len(*change.Nickname) > 4<<10 {
			t.Fatalf("accepted a %d-byte nickname", len(*change.Nickname))
		}
		if len(change.AvatarImage) > avatar.MaxSize {
			t.Fatalf("accepted a %d-byte avatar", len(change.AvatarImage))
		}
		if (change.AvatarImage != nil) != (change.AvatarBase == wantBase) {
			t.Fatalf("avatar %d bytes (nil: %v) with base %q", len(change.AvatarImage), change.AvatarImage == nil, change.AvatarBase)
		}
		if change.AvatarURL != nil {
			t.Fatal("an upload set avatar_url")
		}
	})
}
