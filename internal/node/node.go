// Package node is what one gateway node keeps in memory for the sessions
// of its cluster, and the work it does in the background to keep that
// true: the cache of verified tokens, the revocations it knows of (synced
// from storage every revocation_sync), the codes being exchanged, the
// storage sweep and the move of records of an older layout. The Caddy
// glue keeps one Node per node and settings, and hands it from config to
// config across reloads.
package node

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/gate"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// Settings are what a Node depends on besides its storage.
type Settings struct {
	CacheBytes     int64         // the bound of the verified-token cache
	RevocationSync time.Duration // how often revocations are read from storage
	SweepInterval  time.Duration // how often expired records are removed
	// UserIdle is how long a user without sessions is kept after their
	// last login (refresh_ttl: as long as their last session could live).
	UserIdle time.Duration
}

// FirstSyncTimeout bounds the sync a Node starts with: a node that cannot
// learn every current revocation in that time does not start.
const FirstSyncTimeout = 30 * time.Second

// Node is one node's view of the sessions. Its fields are for the gate and
// the login service; Stop ends its background work.
type Node struct {
	Cache       *token.Cache[*gate.Verified]
	Revocations *store.Revocations
	Flights     *login.CodeFlights

	// attached are the stores of the configurations using this Node, in
	// the order they were attached: the background work uses the newest,
	// since a configuration's storage is closed when it is cleaned up.
	mu       sync.Mutex
	attached []*attachment

	stop context.CancelFunc
	wg   sync.WaitGroup
}

type attachment struct{ records *store.Store }

// Start builds a Node and starts its background work: the revocation sync,
// so that every node learns of logouts within RevocationSync, the storage
// sweep, and the move of records of an older layout. It knows every
// current revocation in records before it returns, or fails. The Node
// works on records until a configuration attaches its own (Use).
func Start(s Settings, records *store.Store, logger *zap.Logger, m *metrics.Metrics) (*Node, error) {
	cache, err := token.NewCache[*gate.Verified](s.CacheBytes)
	if err != nil {
		return nil, fmt.Errorf("creating the token cache: %w", err)
	}
	n := &Node{Cache: cache, Revocations: store.NewRevocations(), Flights: new(login.CodeFlights)}
	first := n.Use(records)
	ctx, cancel := context.WithTimeout(context.Background(), FirstSyncTimeout)
	began := time.Now()
	err = n.Revocations.Sync(ctx, records, began)
	cancel()
	if err != nil {
		cache.Close()
		return nil, fmt.Errorf("could not read every revoked session from storage within %s, so this node would not know whom to refuse: %w; check that the storage is reachable, then start again", FirstSyncTimeout, err)
	}
	logger.Debug("revoked sessions read from storage", zap.Int("revoked", n.Revocations.Len()), zap.Duration("took", time.Since(began)))
	first() // the configuration starting this Node attaches records itself

	ctx, n.stop = context.WithCancel(context.Background())
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		EveryTick(ctx, s.RevocationSync, func(now time.Time) {
			records := n.current()
			if records == nil {
				return
			}
			if err := n.Revocations.Sync(ctx, records, now); err != nil && ctx.Err() == nil {
				logger.Warn("could not read revoked sessions from storage; retrying at the next sync", zap.Error(err))
			}
		})
	}()
	go func() {
		defer n.wg.Done()
		migrated := migrate(ctx, records, time.Now(), logger)
		EveryTick(ctx, s.SweepInterval, func(now time.Time) {
			records := n.current()
			if records == nil {
				return
			}
			if !migrated {
				migrated = migrate(ctx, records, now, logger)
			}
			sweep(ctx, records, now, s, logger, m)
		})
	}()
	return n, nil
}

// Use attaches a configuration's store: the background work uses it from
// now on, until release, after which it goes back to the newest store
// still attached. Call release before the configuration's storage is
// cleaned up.
func (n *Node) Use(records *store.Store) (release func()) {
	a := &attachment{records: records}
	n.mu.Lock()
	n.attached = append(n.attached, a)
	n.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			for i, b := range n.attached {
				if b == a {
					n.attached = append(n.attached[:i], n.attached[i+1:]...)
					break
				}
			}
		})
	}
}

// current is the newest attached store, nil for none (between the last
// release and Stop).
func (n *Node) current() *store.Store {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.attached) == 0 {
		return nil
	}
	return n.attached[len(n.attached)-1].records
}

// Stop ends the background work and lets the cache go.
func (n *Node) Stop() {
	n.stop()
	n.wg.Wait()
	n.Cache.Close()
}

// migrate moves records of an older layout (once for the cluster; the
// others find it done), and reports whether that is done.
func migrate(ctx context.Context, records *store.Store, now time.Time, logger *zap.Logger) bool {
	stats, err := records.Migrate(ctx, now)
	if err != nil {
		if ctx.Err() == nil {
			logger.Warn("could not move the records of the older storage layout; both layouts are read meanwhile, and the move is tried again at the next sweep", zap.Error(err))
		}
		return false
	}
	if stats.Users > 0 || stats.Sessions > 0 {
		logger.Info("moved the records of the older storage layout", zap.Int("users", stats.Users), zap.Int("sessions", stats.Sessions))
	}
	return true
}

// sweep removes expired records from storage. Every node runs it; the
// store's lock makes one of them do the work, about once per interval.
func sweep(ctx context.Context, records *store.Store, now time.Time, s Settings, logger *zap.Logger, m *metrics.Metrics) {
	sctx, cancel := context.WithTimeout(ctx, s.SweepInterval)
	stats, err := records.Sweep(sctx, now, store.SweepPolicy{Interval: s.SweepInterval, UserIdle: s.UserIdle})
	cancel()
	m.SweptRecords(map[string]int{"session": stats.Sessions, "user": stats.Users, "code": stats.Codes,
		"revocation": stats.Revocations, "avatar": stats.Avatars})
	switch {
	case err != nil && ctx.Err() == nil:
		logger.Warn("storage sweep incomplete; the rest is swept next time", zap.Error(err))
	case err == nil && !stats.Skipped:
		logger.Debug("storage sweep",
			zap.Int("sessions_removed", stats.Sessions),
			zap.Int("users_removed", stats.Users),
			zap.Int("users_refiled", stats.Refiled),
			zap.Int("codes_removed", stats.Codes),
			zap.Int("revocations_removed", stats.Revocations),
			zap.Int("avatars_removed", stats.Avatars),
			zap.Duration("took", time.Since(now)))
	}
}

// EveryTick calls f every interval until ctx ends: the one loop of the
// background work.
func EveryTick(ctx context.Context, interval time.Duration, f func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			f(now)
		}
	}
}
