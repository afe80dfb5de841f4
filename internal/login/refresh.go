package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Errors of Refresh and Logout; the handler maps them onto the contract.
var (
	// ErrRefreshInvalid: not a refresh token of any session we know.
	ErrRefreshInvalid = errors.New("refresh token not recognised")
	// ErrRefreshExpired: the refresh token outlived refresh_ttl.
	ErrRefreshExpired = errors.New("refresh token expired")
	// ErrRevoked: the session was logged out, or revoked for reuse of a
	// spent refresh token.
	ErrRevoked = errors.New("session revoked")
)

// newRefreshToken makes "<session id>.<random>": the id finds the session
// without an index, the random part (256 bits) is the secret. Only the hash
// of the whole is stored.
func newRefreshToken(sessionID string) (plain, hash string, err error) {
	random, _, err := token.NewRefreshToken()
	if err != nil {
		return "", "", err
	}
	plain = sessionID + "." + random
	return plain, token.HashRefreshToken(plain), nil
}

// maxRefreshTokenLength: a session id (22) + '.' + 43 random characters,
// with room to spare.
const maxRefreshTokenLength = 128

// Refresh trades a refresh token for a new access token and a new refresh
// token; the old refresh token is spent.
//
// A spent token presented again within the refresh grace of its spending
// is a retry (a lost answer, two tabs, a client retrying in parallel): it
// gets the same successor, following the chain to the session's current
// refresh token if that has been spent in turn, so one live refresh token
// remains. Past the grace, presenting a spent token means two parties hold
// it, and the whole session is revoked.
func (s *Service) Refresh(ctx context.Context, refresh string) (*Result, error) {
	sid, _, ok := strings.Cut(refresh, ".")
	if !ok || len(refresh) > maxRefreshTokenLength || !valid.ID(sid) {
		return nil, ErrRefreshInvalid
	}
	var res *Result
	err := s.withSessionLock(ctx, sid, func(sess *store.Session) (bool, error) {
		now := s.now()
		if sess.Revoked {
			return false, ErrRevoked
		}
		if s.Apps != nil {
			if _, ok := s.Apps(sess.AppID); !ok {
				return false, ErrRefreshInvalid // the app was removed from the config
			}
		}
		presented := token.HashRefreshToken(refresh)
		if subtle.ConstantTimeCompare([]byte(presented), []byte(sess.RefreshHash)) != 1 {
			spent := sess.FindSpent(presented)
			if spent == nil {
				return false, ErrRefreshInvalid
			}
			current, retry := s.successor(sess, refresh, now)
			if !retry {
				// Theft (or a client bug that replays): end the session
				// for everyone holding any of its tokens.
				s.revokeLocked(sess, now)
				return true, ErrRevoked
			}
			var save bool
			var err error
			res, save, err = s.retried(ctx, sess, current, now)
			return save, err
		}
		if !now.Before(sess.RefreshExpires) {
			return false, ErrRefreshExpired
		}
		user, err := s.user(ctx, sess)
		if err != nil {
			return false, err
		}
		next, nextHash, err := newRefreshToken(sess.ID)
		if err != nil {
			return false, err
		}
		spent := store.SpentRefresh{}
		if s.RefreshGrace > 0 {
			sealed, err := token.SealSuccessor(refresh, next, sess.ID)
			if err != nil {
				return false, err
			}
			spent = store.SpentRefresh{GraceUntil: now.Add(s.RefreshGrace), Successor: sealed}
		}
		// Each refresh token lives refresh_ttl from its issue: a user who
		// comes back within that time stays logged in indefinitely.
		sess.Spend(nextHash, now.Add(s.RefreshTTL), spent, now)
		res, err = s.result(sess, user, next, now)
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// successor follows a spent refresh token to the session's current one
// through the successors sealed during their grace. It reports false when
// a token on the way is past its grace (or was spent without one): then
// the presented token is a replay, not a retry.
func (s *Service) successor(sess *store.Session, spentToken string, now time.Time) (string, bool) {
	t := spentToken
	for range store.MaxSpentHashes {
		spent := sess.FindSpent(token.HashRefreshToken(t))
		if spent == nil || spent.Successor == nil || !now.Before(spent.GraceUntil) {
			return "", false
		}
		next, err := token.OpenSuccessor(t, spent.Successor, sess.ID)
		if err != nil {
			return "", false
		}
		if token.HashRefreshToken(next) == sess.RefreshHash {
			return next, true
		}
		t = next
	}
	return "", false
}

// retried answers a refresh retried within the grace: the current refresh
// token again, and an access token for the session. That access token
// expires with the newest one already issued, so a retry writes nothing;
// only when that one is about to expire is a full-length one issued (and
// the session saved, for its revocation's sake).
func (s *Service) retried(ctx context.Context, sess *store.Session, current string, now time.Time) (*Result, bool, error) {
	user, err := s.user(ctx, sess)
	if err != nil {
		return nil, false, err
	}
	if ttl := sess.AccessExpires.Sub(now); ttl >= minRetryAccessTTL {
		access, expires, err := s.Codec.Issue(IdentityOf(sess, user), now, ttl)
		if err != nil {
			return nil, false, fmt.Errorf("issuing the access token: %w", err)
		}
		return &Result{AccessToken: access, AccessExpires: expires, RefreshToken: current, Session: sess, User: user, Retried: true}, false, nil
	}
	res, err := s.result(sess, user, current, now)
	if err != nil {
		return nil, false, err
	}
	res.Retried = true
	return res, true, nil
}

// minRetryAccessTTL: a retried refresh whose newest access token has less
// than this left gets a fresh one instead.
const minRetryAccessTTL = 10 * time.Second

// user is the session's user as stored, or what the session knows of them.
func (s *Service) user(ctx context.Context, sess *store.Session) (*store.User, error) {
	user, err := s.Store.LoadUser(ctx, sess.AppID, sess.OpenID)
	if errors.Is(err, store.ErrNotFound) {
		return &store.User{AppID: sess.AppID, OpenID: sess.OpenID}, nil
	}
	return user, err
}

// Logout revokes the session: its refresh token stops refreshing, and its
// access tokens are refused by every node within the revocation sync bound
// (at once on this node).
func (s *Service) Logout(ctx context.Context, sid string) error {
	return s.withSessionLock(ctx, sid, func(sess *store.Session) (bool, error) {
		return s.endLocked(ctx, sess)
	})
}

// endLocked revokes sess for a logout, under its lock.
func (s *Service) endLocked(ctx context.Context, sess *store.Session) (save bool, err error) {
	if sess.Revoked {
		// Revoked already. Publish again in case a previous attempt
		// failed between its two writes, then say so.
		if err := s.publishRevocation(ctx, sess); err != nil {
			return false, err
		}
		return false, ErrRevoked
	}
	s.revokeLocked(sess, s.now())
	return true, nil
}

// LogoutWithRefresh revokes the session a refresh token belongs to, be it
// the current token or a spent one (a browser's logout, when its access
// cookie is gone). It returns the session, for the user's name in logs and
// for logging the user out everywhere.
func (s *Service) LogoutWithRefresh(ctx context.Context, refresh string) (*store.Session, error) {
	sid, _, ok := strings.Cut(refresh, ".")
	if !ok || len(refresh) > maxRefreshTokenLength || !valid.ID(sid) {
		return nil, ErrRefreshInvalid
	}
	var ended *store.Session
	err := s.withSessionLock(ctx, sid, func(sess *store.Session) (bool, error) {
		presented := token.HashRefreshToken(refresh)
		if subtle.ConstantTimeCompare([]byte(presented), []byte(sess.RefreshHash)) != 1 && sess.FindSpent(presented) == nil {
			return false, ErrRefreshInvalid // a guess must not end anyone's session
		}
		ended = sess
		return s.endLocked(ctx, sess)
	})
	return ended, err
}

// LogoutUser revokes every session of app's user openid (a stolen phone,
// an operator's order) and reports how many were live.
func (s *Service) LogoutUser(ctx context.Context, appid, openid string) (int, error) {
	sessions, err := s.Store.UserSessions(ctx, appid, openid)
	if err != nil {
		return 0, err
	}
	ended := 0
	var errs []error
	for _, sess := range sessions {
		switch err := s.Logout(ctx, sess.ID); {
		case err == nil:
			ended++
		case errors.Is(err, ErrRevoked), errors.Is(err, ErrRefreshInvalid):
			// Ended before, or swept meanwhile.
		default:
			errs = append(errs, err)
		}
	}
	return ended, errors.Join(errs...)
}

// revokeLocked marks sess revoked; withSessionLock saves it and publishes
// the revocation.
func (s *Service) revokeLocked(sess *store.Session, now time.Time) {
	sess.Revoked = true
	sess.RevokedAt = now
}

// withSessionLock loads the session under its storage lock, lets fn change
// it, saves it when fn says so, and publishes a revocation when fn revoked
// it. The lock makes refresh and logout of one session atomic across every
// node sharing the storage: two nodes cannot both spend one refresh token.
func (s *Service) withSessionLock(ctx context.Context, sid string, fn func(*store.Session) (save bool, err error)) error {
	mu := &s.sessionLocks[maphash.String(sessionLockSeed, sid)%uint64(len(s.sessionLocks))]
	mu.Lock()
	defer mu.Unlock()
	storage := s.Store.Storage()
	lock := store.SessionLockName(sid)
	if err := storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("taking the session lock: %w", err)
	}
	defer func() { _ = storage.Unlock(context.WithoutCancel(ctx), lock) }()

	sess, err := s.Store.LoadSession(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return ErrRefreshInvalid
	}
	if err != nil {
		return err
	}
	wasRevoked := sess.Revoked
	save, fnErr := fn(sess)
	if save {
		if err := s.Store.SaveSession(ctx, sess); err != nil {
			return fmt.Errorf("saving the session: %w", err)
		}
		if sess.Revoked && !wasRevoked {
			if err := s.publishRevocation(ctx, sess); err != nil {
				return err
			}
		}
	}
	return fnErr
}

// publishRevocation tells this node at once and the others through storage.
// The revocation lasts until the session's newest access token expires, as
// the session recorded it when the token was issued: the access_ttl of this
// node's configuration may be shorter than the one that issued it.
func (s *Service) publishRevocation(ctx context.Context, sess *store.Session) error {
	until := sess.RevocationUntil(sess.RevokedAt, s.AccessTTL)
	if s.Revocations != nil {
		s.Revocations.Add(sess.ID, until)
	}
	if err := s.Store.SaveRevocation(ctx, &store.Revocation{SessionID: sess.ID, Until: until}, s.now()); err != nil {
		return fmt.Errorf("saving the revocation: %w", err)
	}
	return nil
}
