package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// Revocation is a revoked session. It is kept only while access tokens of
// the session could still be unexpired: after Until every one of them has
// expired on its own.
type Revocation struct {
	SessionID string    `json:"sid"`
	Until     time.Time `json:"until"`
}

// SaveRevocation writes the record every node reads to learn of a revoked
// session: in the folder of the 10 seconds it is made in, its end in its
// name, so that a node learns of it by listing that one folder.
func (s *Store) SaveRevocation(ctx context.Context, r *Revocation, now time.Time) error {
	if !valid.ID(r.SessionID) {
		return errors.New("refusing to store revocation with unsafe session id")
	}
	return s.save(ctx, revocationKey(now, r.SessionID, r.Until), r)
}

// recentWindow is how far back a sync lists folders again though it has
// listed them before: they may still be written to, by nodes whose clocks
// are a little behind or whose write was under way. A node whose clock is
// further off is caught up by the next full sync.
const recentWindow = 30 * time.Second

// Revocations is this node's view of which sessions are revoked. The gate
// asks it on every request, so it answers from memory, from a map sharded
// over read-write locks. A sync reads only the folders that are new
// or still being written: its cost follows what changed, not how many
// sessions are revoked.
type Revocations struct {
	shards [64]revocationShard
	seed   maphash.Seed

	// ends are the sessions by the minute their revocation ends, so that
	// expired ones are forgotten without looking at the others.
	endsMu sync.Mutex
	ends   map[int64][]string

	// syncMu serialises syncs over what follows: the store synced from
	// last, the bucket folders listed from it, and the records of the
	// layout before buckets read from it, by name.
	syncMu sync.Mutex
	from   *Store
	listed map[string]bool
	legacy map[string]bool
	// last is the time of the last sync, full of the last that listed
	// the folder whole.
	last, full time.Time
}

type revocationShard struct {
	mu    sync.RWMutex
	until map[string]time.Time
}

// NewRevocations returns an empty set.
func NewRevocations() *Revocations {
	r := &Revocations{seed: maphash.MakeSeed(), ends: map[int64][]string{}}
	for i := range r.shards {
		r.shards[i].until = map[string]time.Time{}
	}
	return r
}

func (r *Revocations) shard(id string) *revocationShard {
	return &r.shards[maphash.String(r.seed, id)%uint64(len(r.shards))]
}

// Revoked reports whether the session is revoked, as far as this node
// knows.
func (r *Revocations) Revoked(sessionID string) bool {
	sh := r.shard(sessionID)
	sh.mu.RLock()
	_, ok := sh.until[sessionID]
	sh.mu.RUnlock()
	return ok
}

// Len is the number of revoked sessions this node remembers.
func (r *Revocations) Len() int {
	n := 0
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		n += len(sh.until)
		sh.mu.RUnlock()
	}
	return n
}

// Add records a revocation in memory at once (the node that revokes must
// not wait for its own next sync).
func (r *Revocations) Add(sessionID string, until time.Time) {
	sh := r.shard(sessionID)
	sh.mu.Lock()
	old, known := sh.until[sessionID]
	extends := !known || until.After(old)
	if extends {
		sh.until[sessionID] = until
	}
	sh.mu.Unlock()
	if extends {
		m := until.Unix() / 60
		r.endsMu.Lock()
		r.ends[m] = append(r.ends[m], sessionID)
		r.endsMu.Unlock()
	}
}

// forget drops the revocations that have ended at now.
func (r *Revocations) forget(now time.Time) {
	r.endsMu.Lock()
	defer r.endsMu.Unlock()
	nowMinute := now.Unix() / 60
	for m, ids := range r.ends {
		if m > nowMinute {
			continue
		}
		for _, id := range ids {
			sh := r.shard(id)
			sh.mu.Lock()
			if until, ok := sh.until[id]; ok && !now.Before(until) {
				delete(sh.until, id)
			}
			sh.mu.Unlock()
		}
		delete(r.ends, m)
	}
}

// fullSyncEvery is how often a sync lists the revocations folder whole,
// which also finds folders outside the recent window (written by a node
// whose clock is far off) and records of the layout before buckets.
// Between, a sync lists only the folders since the last.
const fullSyncEvery = 10 * time.Minute

// Sync learns the revocations written to records' storage since the last
// sync, and forgets those whose tokens have all expired at now. It lists
// the bucket folders since the last sync (and those of recentWindow
// before, still being written by nodes whose clocks are a little behind, or
// whose write was under way); the first sync of a
// node, the first from another store (a reloaded configuration's) and one
// every fullSyncEvery list them all.
func (r *Revocations) Sync(ctx context.Context, records *Store, now time.Time) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if records != r.from {
		r.from, r.listed, r.legacy, r.full = records, map[string]bool{}, map[string]bool{}, time.Time{}
	}
	r.forget(now)
	recent := now.Add(-recentWindow)
	var folders []string
	full := r.full.IsZero() || now.Sub(r.full) >= fullSyncEvery || now.Before(r.last)
	if full {
		keys, err := records.list(ctx, revokedDir)
		if err != nil {
			return err
		}
		present := make(map[string]bool, len(keys))
		for _, key := range keys {
			name := path.Base(key)
			present[name] = true
			if strings.HasSuffix(name, ".json") {
				if err := r.learnLegacy(ctx, records, key, name, now); err != nil {
					return err
				}
				continue
			}
			if start, ok := bucketTime(name, revocationBucket); ok && (!r.listed[name] || !start.Before(recent.Add(-revocationBucket))) {
				folders = append(folders, name)
			}
		}
		for _, seen := range []map[string]bool{r.listed, r.legacy} {
			for name := range seen {
				if !present[name] {
					delete(seen, name) // swept
				}
			}
		}
	} else {
		per := int64(revocationBucket / time.Second)
		for b := r.last.Add(-recentWindow).Unix() / per; b <= now.Unix()/per+1; b++ {
			folders = append(folders, strconv.FormatInt(b, 10))
		}
	}
	for _, name := range folders {
		entries, err := records.list(ctx, revokedDir+"/"+name)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if id, until, ok := parseRevocation(e); ok && now.Before(until) {
				r.Add(id, until)
			}
		}
		if len(entries) > 0 {
			r.listed[name] = true
		}
	}
	if full {
		r.full = now
	}
	r.last = now
	return nil
}

// learnLegacy reads a revocation of the layout before buckets
// (wxauth/revoked/<id>.json, the end inside) once.
func (r *Revocations) learnLegacy(ctx context.Context, records *Store, key, name string, now time.Time) error {
	if r.legacy[name] {
		return nil
	}
	var rec Revocation
	if err := records.load(ctx, key, &rec); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("reading revocation %s: %w", key, err)
	}
	r.legacy[name] = true
	if now.Before(rec.Until) && valid.ID(rec.SessionID) {
		r.Add(rec.SessionID, rec.Until)
	}
	return nil
}
