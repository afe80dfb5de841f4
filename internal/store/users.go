package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
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

	// IDType says which of its ids the platform gave as OpenID, where it
	// has more than one kind: Alipay's "open_id" or (older apps)
	// "user_id". "" everywhere else.
	IDType string `json:"id_type,omitempty"`

	// Phone is set once the user shared their number (POST /wx/phone).
	Phone *PhoneNumber `json:"phone,omitempty"`

	// SessionKey is the platform's key for this user's encrypted data. The
	// platform keeps only the newest one per user, so neither do we. It never
	// leaves the server: not in a token, an answer or a log line.
	SessionKey        string    `json:"session_key"`
	SessionKeyUpdated time.Time `json:"session_key_updated"`

	// LastLogin is when the user last logged in (a code, or the web
	// login): a user without sessions whose last login is older than
	// refresh_ttl is removed by the sweep.
	LastLogin time.Time `json:"last_login,omitzero"`

	// SweepAt is when the sweep is to look at this user next: their
	// record is filed under that hour (see layout.go), and the sweep
	// removes their expired sessions then, and the user once idle. A login
	// files the user anew only once that time has passed, so most logins
	// write no index entry at all.
	SweepAt time.Time `json:"sweep_at,omitzero"`

	// legacy: loaded from the layout before this one. filed: SweepAt as
	// loaded, so that SaveUser files the user only when it changed.
	legacy bool
	filed  time.Time
}

// NoteLogin records a login at now of a session that lives for life: the
// user's last login, and when the sweep is to look at them (a new filing
// only when the one they have may have been swept already).
func (u *User) NoteLogin(now time.Time, life time.Duration) {
	u.LastLogin = now
	if !u.SweepAt.After(now) {
		u.SweepAt = now.Add(life) // the sweep looks once that hour is over
	}
}

// lastSeen is when the user was last known to log in. Records written
// before LastLogin have the time of their last code exchange.
func (u *User) lastSeen() time.Time { return later(u.LastLogin, u.SessionKeyUpdated) }

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

// LoadUser returns the user, or ErrNotFound. A user stored in the layout
// before this one is found there too (a node of the older version may
// still write it during an upgrade); the next save moves it.
func (s *Store) LoadUser(ctx context.Context, appid, openid string) (*User, error) {
	if !valid.ID(appid) || !valid.ID(openid) {
		return nil, ErrNotFound
	}
	var u User
	err := s.load(ctx, userKey(appid, openid), &u)
	if errors.Is(err, ErrNotFound) && !s.migrated(ctx) {
		if err = s.load(ctx, legacyUserKey(appid, openid), &u); err == nil {
			u.legacy = true
		}
	}
	if err != nil {
		return nil, err
	}
	u.filed = u.SweepAt
	return &u, nil
}

// SaveUser writes the user record whole, files the user for the sweep
// when their SweepAt changed (both at once: they do not depend on each
// other), and removes the copy in the layout before this one that LoadUser
// found.
func (s *Store) SaveUser(ctx context.Context, u *User) error {
	if !valid.ID(u.AppID) || !valid.ID(u.OpenID) {
		return fmt.Errorf("refusing to store user with unsafe appid or openid")
	}
	save := func() error { return s.save(ctx, userKey(u.AppID, u.OpenID), u) }
	if !u.SweepAt.IsZero() && !u.SweepAt.Equal(u.filed) {
		if err := concurrently(save, func() error { return s.fileUser(ctx, u.AppID, u.OpenID, u.SweepAt) }); err != nil {
			return err
		}
		u.filed = u.SweepAt
	} else if err := save(); err != nil {
		return err
	}
	if u.legacy {
		if err := s.storage.Delete(ctx, legacyUserKey(u.AppID, u.OpenID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the moved user record: %w", err)
		}
		u.legacy = false
	}
	return nil
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

// deleteUser removes a user record (the sweep's, for a user whose last
// session has expired).
func (s *Store) deleteUser(ctx context.Context, u *User) error {
	if err := s.storage.Delete(ctx, userKey(u.AppID, u.OpenID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing user %s: %w", u, err)
	}
	return nil
}
