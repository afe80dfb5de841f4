package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
)

// SweepLockName is the storage lock held by the node that sweeps.
const SweepLockName = Prefix + "/sweep"

const sweepStateKey = Prefix + "/sweep.json"

// SweepStats says what one sweep did.
type SweepStats struct {
	Skipped     bool // another node swept within the interval
	Sessions    int  // expired sessions removed
	Codes       int  // expired code records removed
	Revocations int  // revocation records removed (their tokens all expired)
	Avatars     int  // replaced avatar images removed after their grace
	Kept        int  // live sessions left alone
}

type sweepState struct {
	Last time.Time `json:"last"`
}

// Sweep removes what has expired at now: sessions whose refresh token has
// expired, code records past the code's life, revocation records past the
// life of the session's access tokens, and avatar images replaced longer
// than avatar.ReplacedGrace ago. Users are kept (they hold profiles).
//
// Every node calls it on a timer; the storage lock and the stored time of
// the last sweep make it run on one node at a time, and about once per
// interval for the whole cluster.
func (s *Store) Sweep(ctx context.Context, now time.Time, interval time.Duration) (SweepStats, error) {
	var stats SweepStats
	if err := s.storage.Lock(ctx, SweepLockName); err != nil {
		return stats, fmt.Errorf("taking the sweep lock: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), SweepLockName) }()

	var last sweepState
	if err := s.load(ctx, sweepStateKey, &last); err == nil && now.Sub(last.Last) < interval*9/10 {
		stats.Skipped = true
		return stats, nil
	}

	var errs []error
	errs = append(errs, s.sweepDir(ctx, sessionsDir, true, func(key string) (bool, error) {
		var sess Session
		if err := s.load(ctx, key, &sess); err != nil {
			return false, err
		}
		if now.Before(sess.RefreshExpires) {
			stats.Kept++
			return false, nil
		}
		stats.Sessions++
		return true, nil
	}))
	errs = append(errs, s.sweepDir(ctx, codesDir, false, func(key string) (bool, error) {
		var rec CodeRecord
		if err := s.load(ctx, key, &rec); err != nil {
			return false, err
		}
		expired := !now.Before(rec.Expires)
		if expired {
			stats.Codes++
		}
		return expired, nil
	}))
	errs = append(errs, s.sweepDir(ctx, revokedDir, false, func(key string) (bool, error) {
		var rec Revocation
		if err := s.load(ctx, key, &rec); err != nil {
			return false, err
		}
		expired := !now.Before(rec.Until)
		if expired {
			stats.Revocations++
		}
		return expired, nil
	}))
	removed, err := s.avatars.SweepDiscarded(ctx, now, avatar.ReplacedGrace, s.currentAvatar)
	stats.Avatars = removed
	errs = append(errs, err)
	errs = append(errs, s.save(ctx, sweepStateKey, sweepState{Last: now}))
	return stats, errors.Join(errs...)
}

// currentAvatar is the avatar URL in the profile of (appid, openid) now,
// "" for none.
func (s *Store) currentAvatar(ctx context.Context, appid, openid string) (string, error) {
	u, err := s.LoadUser(ctx, appid, openid)
	switch {
	case errors.Is(err, ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case u.Profile == nil:
		return "", nil
	}
	return u.Profile.AvatarURL, nil
}

// sweepDir deletes every record in dir (and its sub-folders, when
// recursive) that expired says is expired. A record that cannot be read is
// left alone and reported: deleting what we do not understand could drop a
// live session. What is not a record at all (a folder, a temporary file a
// crash left behind) is skipped without a word.
func (s *Store) sweepDir(ctx context.Context, dir string, recursive bool, expired func(key string) (bool, error)) error {
	keys, err := s.storage.List(ctx, dir, recursive)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	var errs []error
	for _, key := range keys {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !isRecordKey(key) {
			continue
		}
		gone, err := expired(key)
		if err != nil {
			if !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
			continue
		}
		if gone {
			if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("deleting %s: %w", key, err))
			}
		}
	}
	return errors.Join(errs...)
}
