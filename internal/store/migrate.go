package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
)

// migrateLockName is held by the node that moves older records.
const migrateLockName = Prefix + "/migrate"

// MigrateStats says what a migration moved.
type MigrateStats struct {
	Users    int // user records moved into their hash folders
	Sessions int // sessions moved into their users' folders
}

// Migrate moves the records of the layout before this one, once for the
// cluster (under a storage lock, then noted in layout.json): users into
// their hash folders, filed for the sweep; sessions into their users'
// folders (their old key points to the new one, since the client's
// refresh token names the old id). Everything still works while it runs:
// readers look in both layouts. Revocations and codes of the old layout
// are read where they are until they expire.
func (s *Store) Migrate(ctx context.Context, now time.Time) (MigrateStats, error) {
	var stats MigrateStats
	if s.migrated(ctx) {
		return stats, nil
	}
	if err := s.storage.Lock(ctx, migrateLockName); err != nil {
		return stats, fmt.Errorf("taking the migration lock: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), migrateLockName) }()
	if s.migrated(ctx) {
		return stats, nil // another node did it meanwhile
	}
	if err := s.migrateUsers(ctx, now, &stats); err != nil {
		return stats, err
	}
	if err := s.migrateSessions(ctx, &stats); err != nil {
		return stats, err
	}
	if err := s.save(ctx, layoutKey, layoutRecord{Version: LayoutVersion, Migrated: now}); err != nil {
		return stats, err
	}
	s.layoutCurrent.Store(true)
	return stats, nil
}

// migrateUsers moves users/<appid>/<openid>.json to their hash folders,
// filed for the sweep to look at them after now (they were never filed).
// In the new layout users/ holds folders of folders; a folder holding
// records is an app's of the old one.
func (s *Store) migrateUsers(ctx context.Context, now time.Time, stats *MigrateStats) error {
	tops, err := s.list(ctx, usersDir)
	if err != nil {
		return err
	}
	for _, top := range tops {
		keys, err := s.list(ctx, top)
		if err != nil {
			return err
		}
		for _, key := range keys {
			if !isRecordKey(key) {
				continue
			}
			var u User
			if err := s.load(ctx, key, &u); err != nil {
				return err
			}
			if u.AppID != path.Base(top) || u.OpenID != strings.TrimSuffix(path.Base(key), ".json") {
				continue // not where a record of the old layout would be
			}
			u.legacy = true
			if u.SweepAt.IsZero() {
				u.SweepAt = now
			}
			if err := s.SaveUser(ctx, &u); err != nil {
				return err
			}
			stats.Users++
		}
	}
	return nil
}

// migrateSessions moves sessions/<id>.json into their users' folders.
func (s *Store) migrateSessions(ctx context.Context, stats *MigrateStats) error {
	keys, err := s.list(ctx, sessionsDir)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if !isRecordKey(key) {
			continue // a folder of the new layout
		}
		raw, err := s.loadRaw(ctx, key)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		var moved movedSession
		if json.Unmarshal(raw, &moved) == nil && moved.MovedTo != "" {
			continue
		}
		if err := s.moveSession(ctx, strings.TrimSuffix(path.Base(key), ".json")); err != nil {
			return err
		}
		stats.Sessions++
	}
	return nil
}

// moveSession moves one session under its lock, which refresh and logout
// take too (on nodes of the older version as well).
func (s *Store) moveSession(ctx context.Context, id string) error {
	lock := SessionLockName(id)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("taking the session lock: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()
	sess, err := s.LoadSession(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.SaveSession(ctx, sess)
}
