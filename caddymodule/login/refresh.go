package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wxauth/caddy-wxauth/caddymodule/session"
	"github.com/wxauth/caddy-wxauth/caddymodule/token"
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
// token; the old refresh token is spent. Presenting a spent token again
// means two parties hold it, so the whole session is revoked.
func (s *Service) Refresh(ctx context.Context, refresh string) (*Result, error) {
	sid, _, ok := strings.Cut(refresh, ".")
	if !ok || len(refresh) > maxRefreshTokenLength || !session.ValidID(sid) {
		return nil, ErrRefreshInvalid
	}
	var res *Result
	err := s.withSessionLock(ctx, sid, func(sess *session.Session) (bool, error) {
		now := s.now()
		if sess.Revoked {
			return false, ErrRevoked
		}
		presented := token.HashRefreshToken(refresh)
		if subtle.ConstantTimeCompare([]byte(presented), []byte(sess.RefreshHash)) != 1 {
			if slices.Contains(sess.SpentHashes, presented) {
				// Theft (or a client bug that replays): end the session
				// for everyone holding any of its tokens.
				s.revokeLocked(sess, now)
				return true, ErrRevoked
			}
			return false, ErrRefreshInvalid
		}
		if !now.Before(sess.RefreshExpires) {
			return false, ErrRefreshExpired
		}
		if s.Apps != nil {
			if _, ok := s.Apps(sess.AppID); !ok {
				return false, ErrRefreshInvalid // the app was removed from the config
			}
		}
		next, nextHash, err := newRefreshToken(sess.ID)
		if err != nil {
			return false, err
		}
		// Each refresh token lives refresh_ttl from its issue: a user who
		// comes back within that time stays logged in indefinitely.
		sess.Spend(nextHash, now.Add(s.RefreshTTL))
		user, err := s.Store.LoadUser(ctx, sess.AppID, sess.OpenID)
		if errors.Is(err, session.ErrNotFound) {
			user, err = &session.User{AppID: sess.AppID, OpenID: sess.OpenID}, nil
		}
		if err != nil {
			return false, err
		}
		res, err = s.result(sess, user, next, now)
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Logout revokes the session: its refresh token stops refreshing, and its
// access tokens are refused by every node within the revocation sync bound
// (at once on this node).
func (s *Service) Logout(ctx context.Context, sid string) error {
	return s.withSessionLock(ctx, sid, func(sess *session.Session) (bool, error) {
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
	})
}

// revokeLocked marks sess revoked; withSessionLock saves it and publishes
// the revocation.
func (s *Service) revokeLocked(sess *session.Session, now time.Time) {
	sess.Revoked = true
	sess.RevokedAt = now
}

// withSessionLock loads the session under its storage lock, lets fn change
// it, saves it when fn says so, and publishes a revocation when fn revoked
// it. The lock makes refresh and logout of one session atomic across every
// node sharing the storage: two nodes cannot both spend one refresh token.
func (s *Service) withSessionLock(ctx context.Context, sid string, fn func(*session.Session) (save bool, err error)) error {
	storage := s.Store.Storage()
	lock := session.SessionLockName(sid)
	if err := storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("taking the session lock: %w", err)
	}
	defer func() { _ = storage.Unlock(context.WithoutCancel(ctx), lock) }()

	sess, err := s.Store.LoadSession(ctx, sid)
	if errors.Is(err, session.ErrNotFound) {
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
func (s *Service) publishRevocation(ctx context.Context, sess *session.Session) error {
	// Access tokens issued before the revocation live at most AccessTTL.
	until := sess.RevokedAt.Add(s.AccessTTL)
	if s.Revocations != nil {
		s.Revocations.Add(sess.ID, until)
	}
	if err := s.Store.SaveRevocation(ctx, &session.Revocation{SessionID: sess.ID, Until: until}); err != nil {
		return fmt.Errorf("saving the revocation: %w", err)
	}
	return nil
}
