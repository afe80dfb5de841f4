package store

import (
	"context"
	"errors"
	"io/fs"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Revocation is the storage record of a revoked session. It is kept only
// while access tokens of the session could still be unexpired: after Until
// every one of them has expired on its own.
type Revocation struct {
	SessionID string    `json:"sid"`
	Until     time.Time `json:"until"`
}

func revocationKey(id string) string { return revokedDir + "/" + id + ".json" }

// SaveRevocation writes the record every node reads to learn of a revoked
// session.
func (s *Store) SaveRevocation(ctx context.Context, r *Revocation) error {
	if !valid.ID(r.SessionID) {
		return errors.New("refusing to store revocation with unsafe session id")
	}
	return s.save(ctx, revocationKey(r.SessionID), r)
}

// Revocations is this node's view of which sessions are revoked. The gate
// asks it on every request, so it answers from memory: a map swapped whole
// (copy on write) behind an atomic pointer, read without a lock. Revocations
// are rare; reads are every request.
type Revocations struct {
	store *Store

	current atomic.Pointer[map[string]time.Time] // session id → until

	mu sync.Mutex // serialises writers (Add, Sync)
}

// NewRevocations returns an empty set that syncs with store.
func NewRevocations(store *Store) *Revocations {
	r := &Revocations{store: store}
	empty := map[string]time.Time{}
	r.current.Store(&empty)
	return r
}

// Revoked reports whether the session is revoked, as far as this node
// knows.
func (r *Revocations) Revoked(sessionID string) bool {
	_, ok := (*r.current.Load())[sessionID]
	return ok
}

// Len is the number of revoked sessions this node remembers.
func (r *Revocations) Len() int { return len(*r.current.Load()) }

// Add records a revocation in memory at once (the node that revokes must
// not wait for its own next sync).
func (r *Revocations) Add(sessionID string, until time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.current.Load()
	if _, ok := old[sessionID]; ok {
		return
	}
	next := make(map[string]time.Time, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[sessionID] = until
	r.current.Store(&next)
}

// Sync reads the revocation records in storage, learning new ones and
// forgetting those whose tokens have all expired at now.
func (r *Revocations) Sync(ctx context.Context, now time.Time) error {
	keys, err := r.store.storage.List(ctx, revokedDir, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := *r.current.Load()
	next := make(map[string]time.Time, len(keys))
	changed := false
	for _, key := range keys {
		if !isRecordKey(key) {
			continue
		}
		id := strings.TrimSuffix(path.Base(key), ".json")
		if until, ok := old[id]; ok {
			if now.Before(until) {
				next[id] = until
			} else {
				changed = true
			}
			continue
		}
		var rec Revocation
		if err := r.store.load(ctx, revocationKey(id), &rec); err != nil {
			continue // removed by a sweep meanwhile, or unreadable: next sync
		}
		if now.Before(rec.Until) {
			next[id] = rec.Until
			changed = true
		}
	}
	// Entries added locally whose record is not listed yet (an eventually
	// consistent storage) are kept until they expire.
	for id, until := range old {
		if _, ok := next[id]; !ok && now.Before(until) {
			next[id] = until
		}
	}
	if changed || len(next) != len(old) {
		r.current.Store(&next)
	}
	return nil
}
