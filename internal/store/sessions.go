package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Session is one login: what a refresh token trades against.
type Session struct {
	ID      string    `json:"id"`
	AppID   string    `json:"appid"`
	OpenID  string    `json:"openid"`
	Source  string    `json:"source"`
	Created time.Time `json:"created"`

	// RefreshHash is the hash of the current refresh token; the token itself
	// is never stored.
	RefreshHash    string    `json:"refresh_hash"`
	RefreshExpires time.Time `json:"refresh_expires"`

	// AccessExpires is when the newest access token issued for this session
	// expires. A revocation must last that long, whatever access_ttl a node
	// is configured with when the session ends.
	AccessExpires time.Time `json:"access_expires,omitzero"`

	// Spent are this session's earlier refresh tokens, newest last, so
	// that presenting one again is recognised: within its grace as a retry
	// (answered with its successor), after it as theft (rather than as a
	// random guess, which must not log anyone out).
	Spent []SpentRefresh `json:"spent,omitempty"`

	// SpentHashes is how records written before the refresh grace listed
	// spent tokens: hashes only. Read, never written again.
	SpentHashes []string `json:"spent_hashes,omitempty"`

	// Revoked is set by logout or by refresh-token reuse; a revoked session
	// never refreshes again.
	Revoked   bool      `json:"revoked,omitempty"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// SpentRefresh is one spent refresh token of a session.
type SpentRefresh struct {
	Hash string `json:"hash"`
	// GraceUntil ends the refresh grace of this token: until then,
	// presenting it again is a retry of the refresh that spent it.
	GraceUntil time.Time `json:"grace_until,omitzero"`
	// Successor is the refresh token that replaced this one, sealed under
	// a key only the holder of this one can derive (token.SealSuccessor).
	// Kept only during the grace.
	Successor []byte `json:"successor,omitempty"`
}

// MaxSpentHashes bounds the spent tokens a session remembers: a stolen
// token older than this many rotations is refused as unknown instead of
// revoking the session.
const MaxSpentHashes = 16

// Spend rotates the refresh token: the current one joins the spent ones,
// with its grace and its sealed successor (nil for none), and newHash
// becomes current. Sealed successors whose grace ended at now are dropped.
func (s *Session) Spend(newHash string, expires time.Time, spent SpentRefresh, now time.Time) {
	s.migrateSpent()
	spent.Hash = s.RefreshHash
	s.Spent = append(s.Spent, spent)
	if n := len(s.Spent); n > MaxSpentHashes {
		s.Spent = append([]SpentRefresh(nil), s.Spent[n-MaxSpentHashes:]...)
	}
	for i := range s.Spent {
		if !now.Before(s.Spent[i].GraceUntil) {
			s.Spent[i].Successor = nil
		}
	}
	s.RefreshHash = newHash
	s.RefreshExpires = expires
}

// FindSpent returns the spent token with this hash, or nil.
func (s *Session) FindSpent(hash string) *SpentRefresh {
	s.migrateSpent()
	for i := range s.Spent {
		if s.Spent[i].Hash == hash {
			return &s.Spent[i]
		}
	}
	return nil
}

// migrateSpent moves the hashes of an older record into Spent.
func (s *Session) migrateSpent() {
	for _, h := range s.SpentHashes {
		s.Spent = append(s.Spent, SpentRefresh{Hash: h})
	}
	s.SpentHashes = nil
}

// IssuedAccess records an access token issued for the session, expiring
// at expires.
func (s *Session) IssuedAccess(expires time.Time) {
	if expires.After(s.AccessExpires) {
		s.AccessExpires = expires
	}
}

// RevocationUntil is how long a revocation of the session made at now
// must last: until its newest access token has expired. Records written
// before AccessExpires existed fall back to the refresh token's expiry,
// which no access token of the session outlives, or to fallbackTTL from
// now, whichever is later.
func (s *Session) RevocationUntil(now time.Time, fallbackTTL time.Duration) time.Time {
	if !s.AccessExpires.IsZero() {
		return s.AccessExpires
	}
	return later(s.RefreshExpires, now.Add(fallbackTTL))
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// SessionLockName is the storage lock that serialises changes to one
// session across every node sharing the storage.
func SessionLockName(id string) string { return Prefix + "/sessions/" + id }

// A session id is the user's tag followed by 128 random bits, so that the
// sessions of one user sit in one folder of their own
// (wxauth/sessions/<tag[:2]>/<tag>/<id>.json): "log out everywhere" lists
// that folder, and no folder holds the sessions of everyone. Ids made
// before this layout are 22 random characters and sit directly in
// wxauth/sessions.
const (
	userTagLength   = 12 // 72 bits of SHA-256: folders, not secrets
	sessionIDRandom = 22 // 16 random bytes, base64url
	sessionIDLength = userTagLength + sessionIDRandom
)

// userTag names the folder of one user's sessions. A collision would only
// put two users' sessions in one folder, and every reader checks the
// record's own appid and openid.
func userTag(appid, openid string) string {
	sum := sha256.Sum256([]byte("wxauth-user|" + appid + "|" + openid))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:userTagLength]
}

func userSessionsDir(tag string) string {
	return sessionsDir + "/" + tag[:2] + "/" + tag
}

func sessionKey(id string) string {
	if len(id) == sessionIDLength {
		return userSessionsDir(id[:userTagLength]) + "/" + id + ".json"
	}
	return sessionsDir + "/" + id + ".json" // made before the per-user layout
}

// NewSessionID returns a fresh session id for a session of (appid, openid).
func NewSessionID(appid, openid string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return userTag(appid, openid) + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// UserSessions returns every stored session of (appid, openid), revoked
// ones included. Sessions made before the per-user layout are found by
// reading the old folder, which only shrinks.
func (s *Store) UserSessions(ctx context.Context, appid, openid string) ([]*Session, error) {
	if !valid.ID(appid) || !valid.ID(openid) {
		return nil, nil
	}
	var out []*Session
	collect := func(dir string) error {
		keys, err := s.storage.List(ctx, dir, false)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("listing %s: %w", dir, err)
		}
		for _, key := range keys {
			if !isRecordKey(key) {
				continue // a sub-folder, or a file storage's leftover temporary file
			}
			var sess Session
			if err := s.load(ctx, key, &sess); err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return err
			}
			if sess.AppID == appid && sess.OpenID == openid {
				out = append(out, &sess)
			}
		}
		return nil
	}
	if err := collect(userSessionsDir(userTag(appid, openid))); err != nil {
		return nil, err
	}
	if err := collect(sessionsDir); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadSession returns the session, or ErrNotFound.
func (s *Store) LoadSession(ctx context.Context, id string) (*Session, error) {
	if !valid.ID(id) {
		return nil, ErrNotFound
	}
	var sess Session
	if err := s.load(ctx, sessionKey(id), &sess); err != nil {
		return nil, err
	}
	return &sess, nil
}

// SaveSession writes the session record whole.
func (s *Store) SaveSession(ctx context.Context, sess *Session) error {
	if !valid.ID(sess.ID) {
		return fmt.Errorf("refusing to store session with unsafe id")
	}
	return s.save(ctx, sessionKey(sess.ID), sess)
}
