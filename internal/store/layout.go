package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// The layout of the records in storage. Every folder that grows with the
// number of users is spread over sub-folders by a hash prefix, and every
// record that expires sits in a folder named for when it was made or when
// it expires, so that finding what expired never reads what has not:
//
//	wxauth/users/<t2>/<appid>/<openid>.json             users (t2: 2 characters of the user's tag)
//	wxauth/sessions/<t2>/<tag>/<id>.json                sessions, a folder per user
//	wxauth/expiry/<hour>/<t1>/<appid>.<openid>.json     an entry per user, in the hour the sweep is to look at them (t1: 1 character of the user's tag)
//	wxauth/codes/<hour>/<h2>/<hash>.json                codes, web states, tickets (handoff, scan, with their images), in the hour they were made (h2: 2 characters of the hash)
//	wxauth/revoked/<10s>/<id>.<until>.json              revocations, in the 10 seconds they were made in, until (Unix seconds) in the name
//	wxauth/layout.json                                  the layout version, once records of older layouts are moved
//
// Records of the layout before this one (users/<appid>/<openid>.json,
// sessions/<id>.json, codes/<hash>.json, revoked/<id>.json) are still read
// where they may be; Migrate moves the users and sessions.
const (
	usersDir    = Prefix + "/users"
	sessionsDir = Prefix + "/sessions"
	expiryDir   = Prefix + "/expiry"
	codesDir    = Prefix + "/codes"
	revokedDir  = Prefix + "/revoked"
	layoutKey   = Prefix + "/layout.json"
)

// A session id is the user's tag followed by 128 random bits, so that the
// sessions of one user sit in one folder of their own: "log out
// everywhere" lists that folder. Ids made before are 22 random characters.
const (
	userTagLength   = 12 // 72 bits of SHA-256: folders, not secrets
	sessionIDRandom = 22 // 16 random bytes, base64url
	sessionIDLength = userTagLength + sessionIDRandom
)

// userTag names the folders of one user. A collision would only put two
// users' sessions in one folder, and every reader checks the record's own
// appid and openid; 4096 top folders keep a few thousand entries in each
// at ten million users.
func userTag(appid, openid string) string {
	sum := sha256.Sum256([]byte("wxauth-user|" + appid + "|" + openid))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:userTagLength]
}

func userKey(appid, openid string) string {
	return usersDir + "/" + userTag(appid, openid)[:2] + "/" + appid + "/" + openid + ".json"
}

func legacyUserKey(appid, openid string) string {
	return usersDir + "/" + appid + "/" + openid + ".json"
}

func userSessionsDir(tag string) string { return sessionsDir + "/" + tag[:2] + "/" + tag }

// sessionKey is where a session lives: in its user's folder. Sessions with
// ids from before that folder was named in the id are found through a
// pointer at their old key (legacySessionKey).
func sessionKey(id, appid, openid string) string {
	tag := userTag(appid, openid)
	if isTaggedID(id) {
		tag = id[:userTagLength]
	}
	return userSessionsDir(tag) + "/" + id + ".json"
}

func legacySessionKey(id string) string { return sessionsDir + "/" + id + ".json" }

func isTaggedID(id string) bool { return len(id) == sessionIDLength }

// hourOf names the hour bucket of t.
func hourOf(t time.Time) string { return strconv.FormatInt(t.Unix()/3600, 10) }

// revocationBucket is how much time one folder of revocations covers:
// short, so that a sync lists few records it knows already.
const revocationBucket = 10 * time.Second

// revocationBucketOf names the revocation bucket of t.
func revocationBucketOf(t time.Time) string {
	return strconv.FormatInt(t.Unix()/int64(revocationBucket/time.Second), 10)
}

// bucketTime is the start of a bucket's hour or 10 seconds (per is its
// length), and whether the name is a bucket's.
func bucketTime(name string, per time.Duration) (time.Time, bool) {
	n, err := strconv.ParseInt(name, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, false
	}
	return time.Unix(n*int64(per/time.Second), 0), true
}

// userExpiryKey files a user under the hour of at. appid and openid hold
// no '.', so the name says whose it is without reading it.
// The hour's entries are spread over 64 sub-folders, so that an hour's
// folder holds a few hundred at ten million users.
func userExpiryKey(at time.Time, appid, openid string) string {
	return expiryDir + "/" + hourOf(at) + "/" + userTag(appid, openid)[:1] + "/" + appid + "." + openid + ".json"
}

// parseUserExpiry reads whose a user's expiry entry is from its key.
func parseUserExpiry(key string) (appid, openid string, ok bool) {
	appid, openid, ok = strings.Cut(strings.TrimSuffix(path.Base(key), ".json"), ".")
	return appid, openid, ok && valid.ID(appid) && valid.ID(openid)
}

// shortName is the file name of a short-lived record: a hash, so that the
// code or state it is for is never in storage.
func shortName(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

// shortKey is where a short-lived record made at made lives: in its hour,
// in one of 256 sub-folders (an hour of a busy app's logins is many
// records).
func shortKey(made time.Time, name string) string {
	return codesDir + "/" + hourOf(made) + "/" + name[:2] + "/" + name + ".json"
}

// legacyShortKey is where short-lived records were before they had hours.
func legacyShortKey(name string) string { return codesDir + "/" + name + ".json" }

// revocationKey names a revocation's record. Its end is rounded up to the
// second: a revocation may outlast its session's tokens by a moment, never
// end before them.
func revocationKey(made time.Time, id string, until time.Time) string {
	end := until.Unix()
	if until.After(time.Unix(end, 0)) {
		end++
	}
	return revokedDir + "/" + revocationBucketOf(made) + "/" + id + "." + strconv.FormatInt(end, 10) + ".json"
}

// parseRevocation reads a revocation's session id and end from its key.
func parseRevocation(key string) (id string, until time.Time, ok bool) {
	base := strings.TrimSuffix(path.Base(key), ".json")
	id, end, found := strings.Cut(base, ".")
	if !found {
		return "", time.Time{}, false
	}
	sec, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return id, time.Unix(sec, 0), true
}

// isRecordKey reports whether a listed key is one of our records: a
// ".json" file, not a folder and not a temporary file that a crash left
// behind (file storage writes each record to a randomly named file beside
// it, then renames that).
func isRecordKey(key string) bool {
	return strings.HasSuffix(path.Base(key), ".json")
}

// LayoutVersion is the layout of this version's records (see layout.go).
const LayoutVersion = 2

type layoutRecord struct {
	Version  int       `json:"version"`
	Migrated time.Time `json:"migrated"`
}

// migrated reports whether the records of older layouts are known to be
// moved (cached once true).
func (s *Store) migrated(ctx context.Context) bool {
	if s.layoutCurrent.Load() {
		return true
	}
	var l layoutRecord
	if s.load(ctx, layoutKey, &l) == nil && l.Version >= LayoutVersion {
		s.layoutCurrent.Store(true)
	}
	return s.layoutCurrent.Load()
}
