package userdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// UserInfo is the decrypted getUserInfo payload: the fields wxauth uses,
// named as WeChat sends them. UnionID is empty unless the app is bound to an
// Open Platform account. Gender is 0 unknown, 1 male, 2 female.
//
// DecryptUserInfo accepts Gender and Watermark.Timestamp as a JSON number or
// as a string of digits (an empty string reads as 0): QQ and old clients
// differ. The struct tags serve callers that store a UserInfo as JSON; plain
// json.Unmarshal into UserInfo is strict.
type UserInfo struct {
	OpenID    string    `json:"openId"`
	UnionID   string    `json:"unionId"`
	NickName  string    `json:"nickName"`
	AvatarURL string    `json:"avatarUrl"`
	Gender    int       `json:"gender"`
	City      string    `json:"city"`
	Province  string    `json:"province"`
	Country   string    `json:"country"`
	Language  string    `json:"language"`
	Watermark Watermark `json:"watermark"`
}

// Watermark binds the payload to one app and to the moment it was made.
// Timestamp is in Unix seconds; DecryptUserInfo does not judge its age
// because the platform documents no limit: a caller may.
type Watermark struct {
	AppID     string `json:"appid"`
	Timestamp int64  `json:"timestamp"`
}

// wireUserInfo is UserInfo as it arrives. It is separate, rather than a
// custom UnmarshalJSON on UserInfo, because nested UnmarshalJSON methods make
// encoding/json validate the same bytes again at every level.
type wireUserInfo struct {
	OpenID    string  `json:"openId"`
	UnionID   string  `json:"unionId"`
	NickName  string  `json:"nickName"`
	AvatarURL string  `json:"avatarUrl"`
	Gender    flexInt `json:"gender"`
	City      string  `json:"city"`
	Province  string  `json:"province"`
	Country   string  `json:"country"`
	Language  string  `json:"language"`
	Watermark *struct {
		AppID     string  `json:"appid"`
		Timestamp flexInt `json:"timestamp"`
	} `json:"watermark"`
}

// flexInt is an integer that may be sent as a JSON number or as a string.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*f = 0
			return nil
		}
		b = []byte(s)
	}
	// Deliberately no strconv error: its text would quote the input.
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errNotInt
	}
	*f = flexInt(v)
	return nil
}

var (
	errNotInt    = errors.New("not an integer")
	errShape     = fmt.Errorf("%w: decrypted JSON is not a user info object", ErrDecrypt)
	errNoMark    = fmt.Errorf("%w: watermark missing", ErrWatermark)
	errWrongMark = fmt.Errorf("%w: watermark appid is not this app's: the data was made for another app", ErrWatermark)
)

// DecryptUserInfo decrypts encryptedData, parses it and checks that the
// watermark names appid. An empty appid never matches, so a misconfigured
// caller fails closed. The caller still has to check that OpenID is the
// logged-in user's.
func DecryptUserInfo(sessionKey, encryptedData, iv, appid string) (*UserInfo, error) {
	pt, err := decrypt(sessionKey, encryptedData, iv)
	if err != nil {
		return nil, err
	}
	var w wireUserInfo
	if err := json.Unmarshal(pt, &w); err != nil {
		// json's error text could quote the plaintext, so it is dropped.
		// Valid JSON means the key was right: then it is a shape problem,
		// not a stale session.
		if json.Valid(pt) {
			return nil, errShape
		}
		return nil, errStale
	}
	if w.Watermark == nil || w.Watermark.AppID == "" {
		return nil, errNoMark
	}
	if w.Watermark.AppID != appid {
		return nil, errWrongMark
	}
	return &UserInfo{
		OpenID:    w.OpenID,
		UnionID:   w.UnionID,
		NickName:  w.NickName,
		AvatarURL: w.AvatarURL,
		Gender:    int(w.Gender),
		City:      w.City,
		Province:  w.Province,
		Country:   w.Country,
		Language:  w.Language,
		Watermark: Watermark{AppID: w.Watermark.AppID, Timestamp: int64(w.Watermark.Timestamp)},
	}, nil
}
