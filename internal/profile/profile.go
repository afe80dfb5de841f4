// Package profile is the second half of the split login the platform now
// requires: after a silent login, a user may share a nickname and avatar
// (and change them later), or a phone number, and only then.
//
// A nickname and avatar arrive three ways: as plain values a client got from
// wx.getUserProfile, as an uploaded image (the chooseAvatar flow), or as the
// legacy encrypted getUserInfo data of QQ and old PC/Mac clients. Whatever
// the user typed or chose passes the platform's content check before
// anything is stored.
package profile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/userdata"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Checker asks the platform whether content a user supplied may be shown
// (msgSecCheck and the image check). *platform.Service implements it.
type Checker interface {
	CheckText(ctx context.Context, app platform.App, openid, content string) (platform.Verdict, error)
	CheckImage(ctx context.Context, app platform.App, image []byte) (platform.Verdict, error)
}

// PhoneSource trades a getPhoneNumber code for the user's number.
// *platform.Service implements it.
type PhoneSource interface {
	PhoneNumber(ctx context.Context, app platform.App, code string) (*platform.Phone, error)
}

// Backoff remembers users the platform asked to slow down (errcode 45011).
// *ratelimit.Limiter implements it.
type Backoff interface {
	Block(key string, now time.Time, d time.Duration)
	Blocked(key string, now time.Time) (bool, time.Duration)
}

// Service updates users' profiles and phone numbers. Fill every field but
// Now and Backoff.
type Service struct {
	Users   *store.Store
	Avatars *avatar.Store
	Checker Checker
	Phones  PhoneSource
	Now     func() time.Time // nil means time.Now

	// Backoff, when set, keeps a user the platform answered 45011 for from
	// reaching the platform again until it said to retry: asking within
	// its minute would only be refused again and count against the app.
	// Only the calls that would reach the platform are refused; nothing
	// else of the user's, and no one else, is.
	Backoff Backoff

	// codeLocks serialise the exchanges of one phone code on this node.
	// Striped: a fixed array, no per-code allocation.
	codeLocks [64]sync.Mutex
}

// codeLockSeed spreads codes over Service.codeLocks.
var codeLockSeed = maphash.MakeSeed()

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// InputError is a change the client got wrong; Message says what to fix.
type InputError struct{ Message string }

func (e *InputError) Error() string { return e.Message }

// RejectedError is the platform's content check refusing a nickname or an
// avatar. Nothing of the change was stored.
type RejectedError struct {
	Field string // "nickname" or "avatar"
	Label int    // the platform's reason label, 0 when it gave none
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("the platform's content check rejected the %s (label %d)", e.Field, e.Label)
}

// ErrNotImage: an uploaded avatar is not a JPEG, PNG or WebP image.
var ErrNotImage = errors.New("the avatar is not a JPEG, PNG or WebP image")

// ErrTooLarge: an uploaded avatar is over avatar.MaxSize.
var ErrTooLarge = fmt.Errorf("the avatar is larger than %d bytes", avatar.MaxSize)

// Change is a profile update. Fields left nil are kept as they are.
type Change struct {
	Nickname *string
	// AvatarURL is a URL the client got from the platform (getUserProfile).
	AvatarURL *string
	// AvatarImage is an uploaded image (chooseAvatar). It is stored, and its
	// URL is AvatarBase followed by the image's id.
	AvatarImage []byte
	AvatarBase  string
}

// Update checks and stores a change to the profile of app's user openid.
// With checkContent, a new nickname and an uploaded image pass the
// platform's content check first; a rejection, or a check that could not
// be made, stores nothing.
func (s *Service) Update(ctx context.Context, app platform.App, openid string, c Change, checkContent bool) (*store.User, error) {
	nickname, avatarURL, err := validate(c)
	if err != nil {
		return nil, err
	}
	if checkContent {
		if err := s.check(ctx, app, openid, nickname, c.AvatarImage); err != nil {
			return nil, err
		}
	}
	apply := func(u *store.User) {
		p := store.Profile{}
		if u.Profile != nil {
			p = *u.Profile
		}
		if nickname != nil {
			p.Nickname = *nickname
		}
		if avatarURL != nil {
			p.AvatarURL = *avatarURL
		}
		u.Profile = &p
	}
	if c.AvatarImage == nil {
		return s.storeProfile(ctx, app, openid, apply)
	}
	var user *store.User
	_, err = s.Avatars.Save(ctx, app.AppID, openid, c.AvatarImage, func(id string) error {
		u := c.AvatarBase + id
		avatarURL = &u
		var err error
		user, err = s.storeProfile(ctx, app, openid, apply)
		return err
	})
	return user, err
}

// storeProfile changes the stored user with apply, and notes an image of
// ours that the change replaced, for the sweep to remove after its grace.
func (s *Service) storeProfile(ctx context.Context, app platform.App, openid string, apply func(u *store.User)) (*store.User, error) {
	var replaced string
	user, err := s.Users.UpdateUser(ctx, app.AppID, openid, func(u *store.User) error {
		before := ""
		if u.Profile != nil {
			before = u.Profile.AvatarURL
		}
		apply(u)
		if u.Profile == nil || u.Profile.AvatarURL != before {
			replaced = before
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if replaced != "" {
		// Best effort: the change is stored; an image not noted only stays
		// in storage, as every image did before replaced ones were removed.
		_ = s.Avatars.Discard(ctx, replaced, app.AppID, openid, s.now())
	}
	return user, nil
}

// FromPlatform stores the profile and unionid the platform gave for app's
// user openid at a web login starting a session of sessionLife (the web
// login's userinfo); nil or "" keeps what is stored. The platform's
// profile is the user's own WeChat profile, shared just now: it is not put
// through the content check.
func (s *Service) FromPlatform(ctx context.Context, app platform.App, openid, unionID string, p *store.Profile, sessionLife time.Duration) (*store.User, error) {
	return s.storeProfile(ctx, app, openid, func(u *store.User) {
		u.NoteLogin(s.now(), sessionLife)
		if unionID != "" {
			u.UnionID = unionID
		}
		if p != nil {
			u.Profile = p
		}
	})
}

// check runs the content checks of a change. A nickname the user already
// has is not checked again: it passed when it was set.
func (s *Service) check(ctx context.Context, app platform.App, openid string, nickname *string, image []byte) error {
	if nickname != nil {
		current, err := s.Users.LoadUser(ctx, app.AppID, openid)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if current == nil || current.Profile == nil || current.Profile.Nickname != *nickname {
			v, err := callPlatform(s, app, openid, "msgSecCheck", func() (platform.Verdict, error) {
				return s.Checker.CheckText(ctx, app, openid, *nickname)
			})
			if err != nil {
				return err
			}
			if v.Risky() {
				return &RejectedError{Field: "nickname", Label: v.Label}
			}
		}
	}
	// Alipay and Baidu have no image check: their avatars go unchecked
	// (the startup log says so).
	if image != nil && app.Kind.ChecksImages() {
		v, err := callPlatform(s, app, openid, "img_sec_check", func() (platform.Verdict, error) {
			return s.Checker.CheckImage(ctx, app, image)
		})
		if err != nil {
			return err
		}
		if v.Risky() {
			return &RejectedError{Field: "avatar", Label: v.Label}
		}
	}
	return nil
}

// callPlatform makes one platform call on behalf of app's user openid,
// unless the user is backing off after a 45011, and starts that backoff
// when the platform answers 45011 now.
func callPlatform[T any](s *Service, app platform.App, openid, api string, call func() (T, error)) (T, error) {
	var zero T
	key := BackoffKey(app.AppID, openid)
	if s.Backoff != nil {
		if blocked, retry := s.Backoff.Blocked(key, s.now()); blocked {
			return zero, &platform.Error{Code: platform.RateLimited, API: api, RetryAfter: retry,
				Message: "the platform asked us to slow down for this user; wait and try again (see Retry-After)"}
		}
	}
	v, err := call()
	if pe := platform.AsError(err); pe != nil && pe.Errcode == 45011 && s.Backoff != nil {
		s.Backoff.Block(key, s.now(), pe.RetryAfter)
	}
	return v, err
}

// BackoffKey is the key of a user's backoff. It cannot collide with a
// rate limiter's client key, which is an IP address or network.
func BackoffKey(appid, openid string) string {
	return "user:" + appid + "/" + openid
}

// validate checks a change's shape and returns the nickname and avatar URL
// to store (nil for "keep").
func validate(c Change) (nickname, avatarURL *string, err error) {
	if c.Nickname == nil && c.AvatarURL == nil && c.AvatarImage == nil {
		return nil, nil, &InputError{`send a "nickname", an "avatar_url" or an avatar image (or several)`}
	}
	if c.AvatarURL != nil && c.AvatarImage != nil {
		return nil, nil, &InputError{`send either "avatar_url" or an avatar image, not both`}
	}
	if c.Nickname != nil {
		n, err := cleanNickname(*c.Nickname)
		if err != nil {
			return nil, nil, err
		}
		nickname = &n
	}
	if c.AvatarURL != nil {
		if err := checkAvatarURL(*c.AvatarURL); err != nil {
			return nil, nil, err
		}
		avatarURL = c.AvatarURL
	}
	if c.AvatarImage != nil {
		if len(c.AvatarImage) > avatar.MaxSize {
			return nil, nil, ErrTooLarge
		}
		if avatar.Sniff(c.AvatarImage) == "" {
			return nil, nil, ErrNotImage
		}
	}
	return nickname, avatarURL, nil
}

// cleanNickname trims a nickname and refuses what cannot be shown (see
// valid.Nickname).
func cleanNickname(n string) (string, error) {
	n, err := valid.Nickname(n)
	if err != nil {
		return "", &InputError{err.Error()}
	}
	return n, nil
}

// checkAvatarURL accepts the URL of an avatar the client got from the
// platform (see valid.AvatarURL): it goes upstream in X-WX-AVATAR and
// into pages.
func checkAvatarURL(s string) error {
	if err := valid.AvatarURL(s); err != nil {
		return &InputError{err.Error()}
	}
	return nil
}

// ErrNoSessionKey: the user has no session_key on the server (they never
// logged in through a mini program), so encrypted data cannot be read.
var ErrNoSessionKey = errors.New("there is no session key for this user")

// Encrypted is the legacy encrypted user data of wx.getUserInfo (QQ and old
// PC/Mac clients still send it), as the client posts it.
type Encrypted struct {
	Data      string // encryptedData
	IV        string // iv
	RawData   string // rawData, optional
	Signature string // signature, optional: sha1(rawData + session_key)
}

// Validate checks an Encrypted's shape before any work is done.
func (e Encrypted) Validate() error {
	switch {
	case e.Data == "" || e.IV == "":
		return &InputError{`"encrypted_data" and "iv" are both required; send them as wx.getUserInfo returned them`}
	case e.Signature != "" && e.RawData == "":
		return &InputError{`"signature" was sent without "raw_data"; send both as wx.getUserInfo returned them, or neither`}
	}
	return nil
}

// UpdateFromEncrypted sets the profile of app's user openid from encrypted
// getUserInfo data, decrypted with the session_key the server holds.
func (s *Service) UpdateFromEncrypted(ctx context.Context, app platform.App, openid string, enc Encrypted) (*store.User, error) {
	user, err := s.Users.LoadUser(ctx, app.AppID, openid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSessionKey
	}
	if err != nil {
		return nil, err
	}
	return s.ApplyEncrypted(ctx, app, user, enc)
}

// ApplyEncrypted is UpdateFromEncrypted for a user already loaded, as at
// login (the old two-in-one login sends the data with the code). The data
// comes from the platform, signed by the session key, so it is not put
// through the content check: it is the user's own WeChat or QQ profile.
func (s *Service) ApplyEncrypted(ctx context.Context, app platform.App, user *store.User, enc Encrypted) (*store.User, error) {
	if err := enc.Validate(); err != nil {
		return nil, err
	}
	if !app.Kind.HasEncryptedUserData() {
		return nil, &platform.Error{Code: platform.Unsupported, API: "getUserInfo", Message: app.Kind.Name() +
			" mini programs do not send encrypted user data that the gateway reads; post the nickname and avatar as JSON instead"}
	}
	if user.SessionKey == "" {
		return nil, ErrNoSessionKey
	}
	if enc.Signature != "" {
		if err := userdata.VerifySignature(enc.RawData, enc.Signature, user.SessionKey); err != nil {
			return nil, err
		}
	}
	info, err := userdata.DecryptUserInfo(user.SessionKey, enc.Data, enc.IV, app.AppID)
	if err != nil {
		return nil, err
	}
	if info.OpenID != "" && info.OpenID != user.OpenID {
		// Data decrypted under this user's key can only be theirs; anything
		// else is a forgery or a bug, never a profile to store.
		return nil, fmt.Errorf("%w: the encrypted data names another user", userdata.ErrDecrypt)
	}
	nickname, err := cleanNickname(info.NickName)
	if err != nil {
		return nil, &InputError{"the decrypted profile has no usable nickname: " + err.Error()}
	}
	avatarURL := info.AvatarURL
	if avatarURL != "" && checkAvatarURL(avatarURL) != nil {
		avatarURL = "" // a profile without the picture beats no profile
	}
	return s.storeProfile(ctx, app, user.OpenID, func(u *store.User) {
		u.Profile = &store.Profile{Nickname: nickname, AvatarURL: avatarURL}
		if u.UnionID == "" && valid.ID(info.UnionID) {
			u.UnionID = info.UnionID
		}
	})
}
