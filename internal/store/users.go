package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Profile is what the user chose to show: nickname and avatar.
type Profile struct {
	Nickname  string `json:"nickname"`
	AvatarURL string `json:"avatar_url"`
}

// User is one person in one app, keyed by (appid, openid).
type User struct {
	AppID   string   `json:"appid"`
	OpenID  string   `json:"openid"`
	UnionID string   `json:"unionid,omitempty"`
	Profile *Profile `json:"profile,omitempty"`

	// Phone is set once the user shared their number (POST /wx/phone).
	Phone *PhoneNumber `json:"phone,omitempty"`

	// SessionKey is the platform's key for this user's encrypted data. The
	// platform keeps only the newest one per user, so neither do we. It never
	// leaves the server: not in a token, an answer or a log line.
	SessionKey        string    `json:"session_key"`
	SessionKeyUpdated time.Time `json:"session_key_updated"`
}

// String and GoString keep the session_key out of anything that prints a
// User, by value or by pointer, with %v, %+v, %s or %#v.
func (u User) String() string {
	return fmt.Sprintf("user(%s/%s)", u.AppID, u.OpenID)
}

// GoString: see String.
func (u User) GoString() string { return u.String() }

// PhoneNumber is a number the platform confirmed belongs to the user. Its
// JSON names are those of the /wx/phone answer.
type PhoneNumber struct {
	// Number is what the platform calls phoneNumber: the national number
	// for China, with a "+<country code>" prefix elsewhere. It is what
	// X-WX-PHONE carries.
	Number      string `json:"phone_number"`
	PureNumber  string `json:"pure_phone_number"`
	CountryCode string `json:"country_code"`
}

// String and GoString keep the number itself out of logs and errors: it is
// personal data, and the gateway promises never to log it.
func (p PhoneNumber) String() string {
	if p.Number == "" {
		return "phone(none)"
	}
	return "phone(+" + p.CountryCode + " ****)"
}

// GoString: see String.
func (p PhoneNumber) GoString() string { return p.String() }

func userKey(appid, openid string) string {
	return Prefix + "/users/" + appid + "/" + openid + ".json"
}

// LoadUser returns the user, or ErrNotFound.
func (s *Store) LoadUser(ctx context.Context, appid, openid string) (*User, error) {
	if !valid.ID(appid) || !valid.ID(openid) {
		return nil, ErrNotFound
	}
	var u User
	if err := s.load(ctx, userKey(appid, openid), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// SaveUser writes the user record whole.
func (s *Store) SaveUser(ctx context.Context, u *User) error {
	if !valid.ID(u.AppID) || !valid.ID(u.OpenID) {
		return fmt.Errorf("refusing to store user with unsafe appid or openid")
	}
	return s.save(ctx, userKey(u.AppID, u.OpenID), u)
}

// UpdateUser loads the user (or starts a new record when there is none),
// lets fn change it, and saves it. fn returning an error leaves the stored
// record untouched.
func (s *Store) UpdateUser(ctx context.Context, appid, openid string, fn func(u *User) error) (*User, error) {
	if !valid.ID(appid) || !valid.ID(openid) {
		return nil, fmt.Errorf("refusing to store user with unsafe appid or openid")
	}
	mu := &s.userLocks[maphash.String(s.lockSeed, appid+"/"+openid)%uint64(len(s.userLocks))]
	mu.Lock()
	defer mu.Unlock()
	u, err := s.LoadUser(ctx, appid, openid)
	if errors.Is(err, ErrNotFound) {
		u, err = &User{AppID: appid, OpenID: openid}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := fn(u); err != nil {
		return nil, err
	}
	if err := s.SaveUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}
