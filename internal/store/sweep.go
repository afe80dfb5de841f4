package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
)

// SweepLockName is the storage lock held by the node that sweeps.
const SweepLockName = Prefix + "/sweep"

const sweepStateKey = Prefix + "/sweep.json"

// SweepPolicy is what a sweep needs to know besides the time.
type SweepPolicy struct {
	// Interval is how often the cluster sweeps: a sweep within 9/10 of it
	// after the last one (on any node) is skipped.
	Interval time.Duration
	// UserIdle removes a user whose last session has expired once their
	// last login is this long ago (refresh_ttl); 0 keeps every user.
	UserIdle time.Duration
}

// SweepStats says what one sweep did.
type SweepStats struct {
	Skipped     bool // another node swept within the interval
	Sessions    int  // expired sessions removed
	Refiled     int  // users looked at and filed again (sessions left, or not idle yet)
	Users       int  // users removed (no session left, idle for UserIdle)
	Codes       int  // expired codes and web states removed
	Revocations int  // revocations removed (their tokens all expired)
	Avatars     int  // replaced avatar images removed after their grace
}

type sweepState struct {
	Last time.Time `json:"last"`
	// Users and Codes are the hour folders swept through (Unix hours):
	// the next sweep starts after them, without listing the folder that
	// holds them (on file storage that reads every name under it).
	Users int64 `json:"users_through,omitempty"`
	Codes int64 `json:"codes_through,omitempty"`
	// Full is when the folders were last listed whole, which also finds
	// records of the layout before buckets; once a day.
	Full time.Time `json:"full,omitzero"`
}

// Sweep removes what has expired at now: sessions whose refresh token has
// expired (and users left without sessions, with their avatars), codes
// and web states past their life, revocations past the life of their
// sessions' access tokens, and avatar images replaced longer than
// avatar.ReplacedGrace ago. It reads only the folders of hours and
// buckets that are over: its cost follows what expired, not what is kept.
//
// Every node calls it on a timer; the storage lock and the stored time of
// the last sweep make it run on one node at a time, and about once per
// interval for the whole cluster.
func (s *Store) Sweep(ctx context.Context, now time.Time, p SweepPolicy) (SweepStats, error) {
	var stats SweepStats
	if err := s.storage.Lock(ctx, SweepLockName); err != nil {
		return stats, fmt.Errorf("taking the sweep lock: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), SweepLockName) }()

	var state sweepState
	if err := s.load(ctx, sweepStateKey, &state); err == nil && now.Sub(state.Last) < p.Interval*9/10 {
		stats.Skipped = true
		return stats, nil
	}
	full := now.Sub(state.Full) >= fullListingEvery
	if full {
		state.Users, state.Codes = 0, 0
	}
	var errs []error
	users, err := s.sweepUsers(ctx, now, state.Users, p, &stats)
	errs = append(errs, err)
	codes, err := s.sweepShort(ctx, now, state.Codes, &stats)
	errs = append(errs, err, s.sweepRevocations(ctx, now, &stats))
	removed, err := s.avatars.SweepDiscarded(ctx, now, avatar.ReplacedGrace, s.currentAvatar)
	stats.Avatars = removed
	next := sweepState{Last: now, Users: users, Codes: codes, Full: state.Full}
	if full && errors.Join(errs...) == nil {
		next.Full = now
	}
	errs = append(errs, err, s.save(ctx, sweepStateKey, next))
	return stats, errors.Join(errs...)
}

// sweepUsers looks at the users filed under hours that are over: their
// expired sessions are removed; a user left without sessions is removed
// too (with their avatar) once they have not logged in for UserIdle; a
// user with sessions left is filed again, under the hour the first of them
// expires.
func (s *Store) sweepUsers(ctx context.Context, now time.Time, through int64, p SweepPolicy, stats *SweepStats) (int64, error) {
	hours, _, last, err := s.hourBuckets(ctx, expiryDir, through, clockSlack, now)
	if err != nil {
		return through, err
	}
	var mu sync.Mutex
	add := func(n *int, by int) { mu.Lock(); *n += by; mu.Unlock() }
	var errs []error
	for _, hour := range hours {
		errs = append(errs, s.eachRecordBelow(ctx, hour, func(key string) error {
			appid, openid, ok := parseUserExpiry(key)
			if ok {
				v, err := s.visitUser(ctx, appid, openid, now, p.UserIdle)
				if err != nil {
					return err
				}
				add(&stats.Sessions, v.removed)
				if v.userGone {
					add(&stats.Users, 1)
				}
				if v.refiled {
					add(&stats.Refiled, 1)
				}
			}
			return s.remove(ctx, key)
		}))
	}
	return sweptThrough(hours, errs, last, through), errors.Join(errs...)
}

type userVisit struct {
	removed  int  // sessions removed
	userGone bool // the user was removed
	refiled  bool // the user was filed again
}

// visitUser is the sweep's look at one user.
func (s *Store) visitUser(ctx context.Context, appid, openid string, now time.Time, idle time.Duration) (userVisit, error) {
	var v userVisit
	sessions, err := s.sessionsIn(ctx, userSessionsDir(userTag(appid, openid)), appid, openid)
	if err != nil {
		return v, err
	}
	var next time.Time
	for _, sess := range sessions {
		if now.Before(sess.RefreshExpires) {
			if next.IsZero() || sess.RefreshExpires.Before(next) {
				next = sess.RefreshExpires
			}
			continue
		}
		if err := s.deleteSession(ctx, sess); err != nil {
			return v, err
		}
		v.removed++
	}
	if next.IsZero() {
		u, err := s.LoadUser(ctx, appid, openid)
		switch {
		case errors.Is(err, ErrNotFound):
			return v, nil
		case err != nil:
			return v, err
		case idle <= 0:
			return v, nil
		case now.Sub(u.lastSeen()) >= idle:
			if u.Profile != nil {
				if err := s.avatars.Delete(ctx, u.Profile.AvatarURL); err != nil {
					return v, err
				}
			}
			v.userGone = true
			return v, s.deleteUser(ctx, u)
		}
		next = u.lastSeen().Add(idle)
	}
	v.refiled = true
	return v, s.fileUser(ctx, appid, openid, next)
}

// sweepShort removes the hours of codes and web states that are over, and
// what is left of the layout before hours once it has expired.
func (s *Store) sweepShort(ctx context.Context, now time.Time, through int64, stats *SweepStats) (int64, error) {
	hours, legacy, last, err := s.hourBuckets(ctx, codesDir, through, maxShortLifetime, now)
	if err != nil {
		return through, err
	}
	var mu sync.Mutex
	var errs []error
	for _, hour := range hours {
		errs = append(errs, s.eachRecordBelow(ctx, hour, func(key string) error {
			mu.Lock()
			stats.Codes++
			mu.Unlock()
			return s.remove(ctx, key)
		}))
	}
	swept := sweptThrough(hours, errs, last, through)
	for _, key := range legacy {
		var rec struct {
			Expires time.Time `json:"expires"`
		}
		if err := s.load(ctx, key, &rec); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if !now.Before(rec.Expires) {
			stats.Codes++
			errs = append(errs, s.remove(ctx, key))
		}
	}
	return swept, errors.Join(errs...)
}

// sweepRevocations removes ended revocations from the buckets that are
// over (a folder goes once all in it has ended), and ended ones of the
// layout before buckets.
func (s *Store) sweepRevocations(ctx context.Context, now time.Time, stats *SweepStats) error {
	buckets, legacy, err := s.revocationBuckets(ctx, revokedDir, clockSlack, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, bucket := range buckets {
		keys, err := s.list(ctx, bucket)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		live := false
		for _, key := range keys {
			if _, until, ok := parseRevocation(key); ok && now.Before(until) {
				live = true
				break
			}
		}
		if live {
			continue // ends later; the folder is small and read again next time
		}
		errs = append(errs, s.eachRecord(ctx, bucket, func(key string) error { return s.remove(ctx, key) }))
		stats.Revocations += len(keys)
	}
	for _, key := range legacy {
		var rec Revocation
		if err := s.load(ctx, key, &rec); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		if !now.Before(rec.Until) {
			stats.Revocations++
			errs = append(errs, s.remove(ctx, key))
		}
	}
	return errors.Join(errs...)
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
