// Package node is what one gateway node keeps in memory for the sessions
// of its cluster, and the work it does in the background to keep that
// true: the cache of verified tokens, the revocations it knows of (synced
// from storage every revocation_sync), the codes being exchanged, and the
// storage sweep. The Caddy glue keeps one Node per node and settings, and
// hands it from config to config across reloads.
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
}

// firstSyncTimeout bounds the sync a Node starts with.
const firstSyncTimeout = 30 * time.Second

// Node is one node's view of the sessions. Its fields are for the gate and
// the login service; Stop ends its background work.
type Node struct {
	Cache       *token.Cache[*gate.Verified]
	Revocations *store.Revocations
	Flights     *login.CodeFlights

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// Start builds a Node on records and starts its background work: the
// revocation sync, so that every node learns of logouts within
// RevocationSync, and the storage sweep. It knows every current revocation
// before it returns.
func Start(s Settings, records *store.Store, logger *zap.Logger, m *metrics.Metrics) (*Node, error) {
	cache, err := token.NewCache[*gate.Verified](s.CacheBytes)
	if err != nil {
		return nil, fmt.Errorf("creating the token cache: %w", err)
	}
	n := &Node{Cache: cache, Revocations: store.NewRevocations(records), Flights: new(login.CodeFlights)}
	ctx, cancel := context.WithTimeout(context.Background(), firstSyncTimeout)
	err = n.Revocations.Sync(ctx, time.Now())
	cancel()
	if err != nil {
		cache.Close()
		return nil, fmt.Errorf("reading revoked sessions from storage: %w", err)
	}

	ctx, n.stop = context.WithCancel(context.Background())
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		EveryTick(ctx, s.RevocationSync, func(now time.Time) {
			if err := n.Revocations.Sync(ctx, now); err != nil && ctx.Err() == nil {
				logger.Warn("could not read revoked sessions from storage; retrying at the next sync", zap.Error(err))
			}
		})
	}()
	go func() {
		defer n.wg.Done()
		EveryTick(ctx, s.SweepInterval, func(now time.Time) { sweep(ctx, records, now, s.SweepInterval, logger, m) })
	}()
	return n, nil
}

// Stop ends the background work and lets the cache go.
func (n *Node) Stop() {
	n.stop()
	n.wg.Wait()
	n.Cache.Close()
}

// sweep removes expired records from storage. Every node runs it; the
// store's lock makes one of them do the work, about once per interval.
func sweep(ctx context.Context, records *store.Store, now time.Time, interval time.Duration, logger *zap.Logger, m *metrics.Metrics) {
	sctx, cancel := context.WithTimeout(ctx, interval)
	stats, err := records.Sweep(sctx, now, interval)
	cancel()
	switch {
	case err != nil && ctx.Err() == nil:
		logger.Warn("storage sweep incomplete; the rest is swept next time", zap.Error(err))
	case err == nil && !stats.Skipped:
		m.SweptSessions(stats.Kept)
		logger.Debug("storage sweep",
			zap.Int("sessions_removed", stats.Sessions),
			zap.Int("sessions_kept", stats.Kept),
			zap.Int("codes_removed", stats.Codes),
			zap.Int("revocations_removed", stats.Revocations),
			zap.Int("avatars_removed", stats.Avatars))
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
