package caddymodule

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// states holds the in-memory state of running wxauth handlers. A config
// reload provisions the new handler before cleaning up the old one, so a
// state whose key is unchanged is handed over instead of rebuilt: verified
// tokens stay cached, known revocations stay known, codes being exchanged
// stay deduplicated, and no background goroutine is started twice.
var states = caddy.NewUsagePool()

// sharedState is what outlives a config reload.
type sharedState struct {
	cache       *token.Cache[*verified]
	revocations *store.Revocations
	flights     *login.CodeFlights

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// stateSettings is everything the state depends on; a change to any of it
// makes a new state (the cached header sets, for one, depend on the key
// and on forward_phone).
type stateSettings struct {
	storageID      string
	keyID          string
	forwardPhone   bool
	cacheBytes     int64
	revocationSync time.Duration
	sweepInterval  time.Duration
}

func (s stateSettings) key() string {
	return fmt.Sprintf("wxauth|%s|%s|%t|%d|%s|%s", s.storageID, s.keyID, s.forwardPhone, s.cacheBytes, s.revocationSync, s.sweepInterval)
}

// storageID names a storage backend for the state key. Two configs on the
// same storage share state; a storage without a String method is known by
// its type only, which errs on the side of sharing between identical setups.
func storageID(s any) string {
	if str, ok := s.(fmt.Stringer); ok {
		return str.String()
	}
	return fmt.Sprintf("%T", s)
}

// newSharedState builds the state and starts its background work: the
// revocation sync (so every node learns of logouts within revocationSync)
// and the storage sweep.
func newSharedState(settings stateSettings, records *store.Store, logger *zap.Logger, m *metrics.Metrics) (*sharedState, error) {
	cache, err := token.NewCache[*verified](settings.cacheBytes)
	if err != nil {
		return nil, fmt.Errorf("creating the token cache: %v", err)
	}
	st := &sharedState{
		cache:       cache,
		revocations: store.NewRevocations(records),
		flights:     new(login.CodeFlights),
	}
	// Know every current revocation before the first request.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = st.revocations.Sync(ctx, time.Now())
	cancel()
	if err != nil {
		cache.Close()
		return nil, fmt.Errorf("reading revoked sessions from storage: %v", err)
	}

	ctx, st.stop = context.WithCancel(context.Background())
	st.wg.Add(2)
	go func() {
		defer st.wg.Done()
		st.revocations.Run(ctx, settings.revocationSync, func(err error) {
			logger.Warn("could not read revoked sessions from storage; retrying at the next sync", zap.Error(err))
		})
	}()
	go func() {
		defer st.wg.Done()
		sweepLoop(ctx, records, settings.sweepInterval, logger, m)
	}()
	return st, nil
}

// Destruct stops the background work; called when the last handler using
// the state is cleaned up.
func (st *sharedState) Destruct() error {
	st.stop()
	st.wg.Wait()
	st.cache.Close()
	return nil
}

// sweepLoop removes expired records from storage every interval. Every node
// runs it; Store.Sweep's lock makes one of them do the work.
func sweepLoop(ctx context.Context, records *store.Store, interval time.Duration, logger *zap.Logger, m *metrics.Metrics) {
	everyTick(ctx, interval, func(now time.Time) {
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
	})
}

// platformServices holds one platform.Service per kind of platform client
// on this node: every handler, site and config that calls the platform the
// same way shares one cache of access tokens, so an app's token is fetched
// once per node and survives reloads.
var platformServices = caddy.NewUsagePool()

// platformServiceKey names the client settings a Service depends on. The
// Service itself keys its tokens by app and secret.
func platformServiceKey(sandboxed bool, timeout time.Duration, concurrency int) string {
	return fmt.Sprintf("wxauth-platform|%t|%s|%d", sandboxed, timeout, concurrency)
}

// platformService is a platform.Service in a UsagePool. It has no
// background work: Destruct only lets the cache go.
type platformService struct{ *platform.Service }

func (platformService) Destruct() error { return nil }

// limiters holds the per-client-IP limiters, one per setting, so that a
// reload keeps every client's count and every backoff: a reload must not
// hand an attacker a fresh allowance.
var limiters = caddy.NewUsagePool()

func limiterKey(requests int, window time.Duration) string {
	return fmt.Sprintf("wxauth-limit|%d|%s", requests, window)
}

// limiter is a ratelimit.Limiter in a UsagePool, with the loop that
// forgets idle clients.
type limiter struct {
	*ratelimit.Limiter
	stop context.CancelFunc
	done chan struct{}
}

func newLimiter(requests int, window time.Duration) *limiter {
	ctx, stop := context.WithCancel(context.Background())
	l := &limiter{Limiter: ratelimit.New(requests, window, 0), stop: stop, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		everyTick(ctx, window, l.Sweep)
	}()
	return l
}

// everyTick calls f every interval until ctx ends.
func everyTick(ctx context.Context, interval time.Duration, f func(now time.Time)) {
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

func (l *limiter) Destruct() error {
	l.stop()
	<-l.done
	return nil
}

var (
	_ caddy.Destructor = (*sharedState)(nil)
	_ caddy.Destructor = platformService{}
	_ caddy.Destructor = (*limiter)(nil)
)
