package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
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

	// unmoved: loaded from its key of the layout before this one.
	unmoved bool
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

// NewSessionID returns a fresh session id for a session of (appid, openid).
func NewSessionID(appid, openid string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return userTag(appid, openid) + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// movedSession is what stays at the old key of a session made before ids
// named their user's folder: where it went.
type movedSession struct {
	MovedTo string `json:"moved_to"` // the user's tag
}

// LoadSession returns the session, or ErrNotFound.
func (s *Store) LoadSession(ctx context.Context, id string) (*Session, error) {
	if !valid.ID(id) {
		return nil, ErrNotFound
	}
	var sess Session
	if isTaggedID(id) {
		if err := s.load(ctx, userSessionsDir(id[:userTagLength])+"/"+id+".json", &sess); err != nil {
			return nil, err
		}
		return &sess, nil
	}
	// An id from before: a pointer to its user's folder, or (not moved
	// yet) the record itself.
	raw, err := s.loadRaw(ctx, legacySessionKey(id))
	if err != nil {
		return nil, err
	}
	var moved movedSession
	if json.Unmarshal(raw, &moved) == nil && moved.MovedTo != "" {
		if err := s.load(ctx, userSessionsDir(moved.MovedTo)+"/"+id+".json", &sess); err != nil {
			return nil, err
		}
		return &sess, nil
	}
	if err := json.Unmarshal(raw, &sess); err != nil {
		return nil, fmt.Errorf("storage record %s is corrupt (%v); delete it to start over", legacySessionKey(id), err)
	}
	sess.unmoved = true
	return &sess, nil
}

// SaveSession writes the session record whole, in its user's folder. A
// session loaded from its old key is moved there on the way (its old key
// then points to it) and its user filed for the sweep.
func (s *Store) SaveSession(ctx context.Context, sess *Session) error {
	if !valid.ID(sess.ID) || !valid.ID(sess.AppID) || !valid.ID(sess.OpenID) {
		return fmt.Errorf("refusing to store session with unsafe id")
	}
	if err := s.save(ctx, sessionKey(sess.ID, sess.AppID, sess.OpenID), sess); err != nil {
		return err
	}
	if sess.unmoved {
		err := concurrently(
			func() error {
				return s.save(ctx, legacySessionKey(sess.ID), movedSession{MovedTo: userTag(sess.AppID, sess.OpenID)})
			},
			func() error { return s.fileUser(ctx, sess.AppID, sess.OpenID, later(sess.RefreshExpires, time.Now())) })
		if err != nil {
			return err
		}
		sess.unmoved = false
	}
	return nil
}

// fileUser files (appid, openid) for the sweep to look at after at. An
// entry more is harmless: the sweep then looks once more.
func (s *Store) fileUser(ctx context.Context, appid, openid string, at time.Time) error {
	if err := s.storage.Store(ctx, userExpiryKey(at, appid, openid), nil); err != nil {
		return fmt.Errorf("filing user %s/%s for the sweep: %w", appid, openid, err)
	}
	return nil
}

// deleteSession removes a session record (and the pointer at its old key).
func (s *Store) deleteSession(ctx context.Context, sess *Session) error {
	keys := []string{sessionKey(sess.ID, sess.AppID, sess.OpenID)}
	if !isTaggedID(sess.ID) {
		keys = append(keys, legacySessionKey(sess.ID))
	}
	for _, key := range keys {
		if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleting %s: %w", key, err)
		}
	}
	return nil
}

// UserSessions returns every stored session of (appid, openid), revoked
// ones included: their user's folder. Sessions made before that folder,
// and not moved into it yet (Migrate does), are found in the old folder.
func (s *Store) UserSessions(ctx context.Context, appid, openid string) ([]*Session, error) {
	if !valid.ID(appid) || !valid.ID(openid) {
		return nil, nil
	}
	out, err := s.sessionsIn(ctx, userSessionsDir(userTag(appid, openid)), appid, openid)
	if err != nil || s.migrated(ctx) {
		return out, err
	}
	legacy, err := s.sessionsIn(ctx, sessionsDir, appid, openid)
	return append(out, legacy...), err
}

// sessionsIn reads the sessions of (appid, openid) in a folder. A pointer
// left at a moved session's old key is not a session.
func (s *Store) sessionsIn(ctx context.Context, dir, appid, openid string) ([]*Session, error) {
	keys, err := s.list(ctx, dir)
	if err != nil {
		return nil, err
	}
	var out []*Session
	for _, key := range keys {
		if !isRecordKey(key) {
			continue // a sub-folder, or a file storage's leftover temporary file
		}
		var sess Session
		if err := s.load(ctx, key, &sess); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		if sess.ID != "" && sess.AppID == appid && sess.OpenID == openid {
			out = append(out, &sess)
		}
	}
	return out, nil
}
