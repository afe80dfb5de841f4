// Package session keeps the gateway's server-side state in Caddy's storage:
// one record per user (the platform's session_key, the profile) and one per
// login session (the refresh-token hash and expiry). Because it only needs
// certmagic.Storage, every Caddy node that shares a storage backend shares
// these records, and a restart finds them where it left them.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Prefix is the storage folder that holds everything this gateway writes.
const Prefix = "wxauth"

// ErrNotFound means the record does not exist (never stored, or removed).
var ErrNotFound = errors.New("not found")

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

// CodeRecord remembers which user a login code was exchanged for, so a
// retried or double-tapped code logs the same user in again without asking
// the platform, which would answer 40163 for a second exchange.
type CodeRecord struct {
	AppID   string    `json:"appid"`
	OpenID  string    `json:"openid"`
	UnionID string    `json:"unionid,omitempty"`
	Expires time.Time `json:"expires"`
}

// Store reads and writes records in Caddy storage.
type Store struct {
	storage certmagic.Storage
	avatars *avatar.Store // for the sweep of replaced images

	// userLocks serialise read-modify-write of one user's record on this
	// node, so a login and a profile update of the same user cannot undo
	// each other. Striped: a fixed array, no per-user allocation.
	userLocks [64]sync.Mutex
	lockSeed  maphash.Seed
}

// NewStore returns a Store on top of storage (usually ctx.Storage()).
func NewStore(storage certmagic.Storage) *Store {
	marked := markedStorage{storage}
	return &Store{storage: marked, avatars: avatar.NewStore(marked), lockSeed: maphash.MakeSeed()}
}

// Storage is the underlying storage, for callers that need its locks (or
// keep records of their own there), its failures marked with ErrStorage.
func (s *Store) Storage() certmagic.Storage { return s.storage }

func userKey(appid, openid string) string {
	return Prefix + "/users/" + appid + "/" + openid + ".json"
}

// Storage folders, for listing.
const (
	sessionsDir = Prefix + "/sessions"
	codesDir    = Prefix + "/codes"
	revokedDir  = Prefix + "/revoked"
)

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

func codeKey(appid, code string) string {
	sum := sha256.Sum256([]byte(appid + "\x00" + code))
	return codesDir + "/" + hex.EncodeToString(sum[:]) + ".json"
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

// isRecordKey reports whether a listed key is one of our records: a
// ".json" file, not a folder and not a temporary file that a crash left
// behind (file storage writes each record to a randomly named file beside
// it, then renames that).
func isRecordKey(key string) bool {
	return strings.HasSuffix(path.Base(key), ".json")
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

// LoadCode returns the record of an exchanged login code, or ErrNotFound
// (also when it has expired at now).
func (s *Store) LoadCode(ctx context.Context, appid, code string, now time.Time) (*CodeRecord, error) {
	return s.loadCodeRecord(ctx, codeKey(appid, code), appid, now)
}

func (s *Store) loadCodeRecord(ctx context.Context, key, appid string, now time.Time) (*CodeRecord, error) {
	var rec CodeRecord
	if err := s.load(ctx, key, &rec); err != nil {
		return nil, err
	}
	if !now.Before(rec.Expires) || rec.AppID != appid {
		return nil, ErrNotFound
	}
	return &rec, nil
}

// SaveCode remembers that code was exchanged for rec's user.
func (s *Store) SaveCode(ctx context.Context, code string, rec *CodeRecord) error {
	return s.save(ctx, codeKey(rec.AppID, code), rec)
}

// Phone codes (from the getPhoneNumber button) are remembered like login
// codes, in the same folder so the sweep removes them too, under keys of
// their own: a phone code and a login code never name one record.
func phoneCodeKey(appid, code string) string { return codeKey(appid, "phone\x00"+code) }

// PhoneCodeLockName is the storage lock held while a phone code is
// exchanged: getuserphonenumber is billed per call, so one code is
// exchanged once across every node.
func PhoneCodeLockName(appid, code string) string {
	sum := sha256.Sum256([]byte(appid + "\x00phone\x00" + code))
	return Prefix + "/phonecodes/" + hex.EncodeToString(sum[:])
}

// WebState is a web login in progress: what the state sent to the
// platform's authorize page stands for. It lives in the codes folder (it is
// a one-time value like a code), so the sweep removes it once it expires.
type WebState struct {
	AppID   string    `json:"appid"`
	Next    string    `json:"next"` // where to send the browser afterwards
	Expires time.Time `json:"expires"`
}

func webStateKey(state string) string { return codeKey("", "webstate\x00"+state) }

func webStateLockName(state string) string {
	sum := sha256.Sum256([]byte("webstate\x00" + state))
	return Prefix + "/webstates/" + hex.EncodeToString(sum[:])
}

// SaveWebState remembers a web login started with state.
func (s *Store) SaveWebState(ctx context.Context, state string, ws *WebState) error {
	return s.save(ctx, webStateKey(state), ws)
}

// TakeWebState returns the web login started with state and forgets it:
// a state is good once, on whichever node the browser comes back to. It
// returns ErrNotFound for a state never issued, already taken, or expired
// at now.
func (s *Store) TakeWebState(ctx context.Context, state string, now time.Time) (*WebState, error) {
	lock := webStateLockName(state)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the web login state: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()

	var ws WebState
	key := webStateKey(state)
	if err := s.load(ctx, key, &ws); err != nil {
		return nil, err
	}
	if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("forgetting the web login state: %w", err)
	}
	if !now.Before(ws.Expires) {
		return nil, ErrNotFound
	}
	return &ws, nil
}

// LoadPhoneCode returns the record of an exchanged phone code, or
// ErrNotFound (also when it has expired at now).
func (s *Store) LoadPhoneCode(ctx context.Context, appid, code string, now time.Time) (*CodeRecord, error) {
	return s.loadCodeRecord(ctx, phoneCodeKey(appid, code), appid, now)
}

// SavePhoneCode remembers that a phone code was exchanged for rec's user.
func (s *Store) SavePhoneCode(ctx context.Context, code string, rec *CodeRecord) error {
	return s.save(ctx, phoneCodeKey(rec.AppID, code), rec)
}

func (s *Store) load(ctx context.Context, key string, v any) error {
	data, err := s.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("loading %s from storage: %w", key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("storage record %s is corrupt (%v); delete it to start over", key, err)
	}
	return nil
}

func (s *Store) save(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("saving %s to storage: %w", key, err)
	}
	return nil
}
