package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/profile"
)

// maxJSONBody caps JSON request bodies. The largest legitimate one is a
// legacy login with encrypted user data, a few KiB.
const maxJSONBody = 64 << 10

// maxMultipartBody caps a chooseAvatar upload: the image plus the nickname
// field and the multipart framing.
const maxMultipartBody = avatar.MaxSize + 64<<10

// maxNicknameField bounds the nickname field of an upload before the
// profile rules look at it.
const maxNicknameField = 4 << 10

// loginRequest is the body of POST /wx/login. The encrypted fields are the
// old two-in-one login: wx.getUserInfo's data sent along with the code.
type loginRequest struct {
	Code  string `json:"code"`
	AppID string `json:"appid"`
	encryptedFields
}

// encryptedFields are the legacy encrypted user data as a client posts
// them, on /wx/login and /wx/profile alike.
type encryptedFields struct {
	EncryptedData string `json:"encrypted_data"`
	IV            string `json:"iv"`
	RawData       string `json:"raw_data"`
	Signature     string `json:"signature"`
}

// encrypted returns the fields, and whether any was sent.
func (f encryptedFields) encrypted() (profile.Encrypted, bool) {
	enc := profile.Encrypted{Data: f.EncryptedData, IV: f.IV, RawData: f.RawData, Signature: f.Signature}
	return enc, enc != profile.Encrypted{}
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// logoutRequest is the optional body of POST /wx/logout.
type logoutRequest struct {
	// Everywhere ends every session of the user in this app, not only
	// this one (a stolen phone).
	Everywhere bool `json:"everywhere"`
}

// profileRequest is the JSON body of POST /wx/profile: either the plain
// profile (nickname, avatar_url) or the legacy encrypted user data.
type profileRequest struct {
	Nickname  *string `json:"nickname"`
	AvatarURL *string `json:"avatar_url"`
	encryptedFields
}

// phoneRequest is the body of POST /wx/phone.
type phoneRequest struct {
	Code string `json:"code"`
}

// hasBody reports whether the request has a body to read.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && (r.ContentLength > 0 || r.ContentLength == -1)
}

// decodeJSON reads a POSTed JSON object into v, answering the contract's
// errors for the wrong method, Content-Type, size or shape.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) *apiError {
	if r.Method != http.MethodPost {
		return errMethod(http.MethodPost)
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errMediaType("application/json")
	}
	body := http.MaxBytesReader(w, r.Body, maxJSONBody)
	dec := json.NewDecoder(body)
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// One object, nothing after it.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := jsonError(err); e.Code == "body_too_large" {
				return e
			}
		}
		return errInvalidRequest("the body must be a single JSON object")
	}
	return nil
}

func jsonError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooLarge):
		return errBodyTooLarge(maxJSONBody)
	case errors.Is(err, io.EOF):
		return errInvalidRequest("the body is empty; send a JSON object")
	case errors.As(err, &typeErr):
		// encoding/json puts the Go name of an embedded struct in the path
		// ("encryptedFields.iv"); the client only knows the JSON name, and
		// every request body is a flat object.
		field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
		if field == "" {
			return errInvalidRequest("the body must be a JSON object")
		}
		return errInvalidRequest(`field "` + field + `" must be a ` + typeErr.Type.String())
	default:
		return errInvalidRequest("the body is not valid JSON")
	}
}

// readAvatarUpload reads the chooseAvatar upload: wx.uploadFile posts the
// image as the file field "avatar", with "nickname" among its formData. An
// uploaded image is to be served under avatarBase.
func readAvatarUpload(w http.ResponseWriter, r *http.Request, boundary, avatarBase string) (profile.Change, *apiError) {
	var change profile.Change
	if boundary == "" {
		return change, errInvalidRequest("the multipart body has no boundary; let wx.uploadFile build the request")
	}
	mr := multipart.NewReader(http.MaxBytesReader(w, r.Body, maxMultipartBody), boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return change, multipartError(err)
		}
		switch part.FormName() {
		case "nickname":
			data, err := io.ReadAll(io.LimitReader(part, maxNicknameField+1))
			if err != nil {
				return change, multipartError(err)
			}
			if len(data) > maxNicknameField {
				return change, errInvalidRequest(`"nickname" is too long`)
			}
			n := string(data)
			change.Nickname = &n
		case "avatar":
			if change.AvatarImage != nil {
				return change, errInvalidRequest(`send one "avatar" file`)
			}
			data, err := io.ReadAll(io.LimitReader(part, avatar.MaxSize+1))
			if err != nil {
				return change, multipartError(err)
			}
			if len(data) > avatar.MaxSize {
				return change, errBodyTooLarge(avatar.MaxSize)
			}
			change.AvatarImage = data // never nil: an empty file is still a file (and not an image)
		}
		// Other fields (wx.uploadFile adds none, but a client may) are skipped.
	}
	if change.AvatarImage != nil {
		change.AvatarBase = avatarBase
	}
	return change, nil
}

func multipartError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return errBodyTooLarge(maxMultipartBody)
	}
	return errInvalidRequest("the multipart body is malformed; let wx.uploadFile build the request")
}
