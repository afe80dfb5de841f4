package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxauth/caddy-wxauth/internal/node"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
)

// What outlives a config reload lives in caddy.UsagePools, one entry per
// node and settings. A reload provisions the new handler before cleaning
// up the old one, so an entry whose key is unchanged is handed over
// instead of rebuilt.

// sessionPool holds this node's view of sessions (a node.Node): verified
// tokens stay cached, known revocations stay known, codes being exchanged
// stay deduplicated, and no background goroutine is started twice.
var sessionPool = caddy.NewUsagePool()

// sessionSettings is everything a node.Node depends on; a change to any of
// it makes a new one (the cached header sets, for one, depend on the key
// and on forward_phone).
type sessionSettings struct {
	storageID    string
	keyID        string
	forwardPhone bool
	node.Settings
}

func (s sessionSettings) key() string {
	return fmt.Sprintf("wxauth|%s|%s|%t|%d|%s|%s|%s", s.storageID, s.keyID, s.forwardPhone, s.CacheBytes, s.RevocationSync, s.SweepInterval, s.UserIdle)
}

// storageID names a storage backend for the pool keys. Two configs on the
// same storage share an entry; a storage without a String method is known by
// its type only, which errs on the side of sharing between identical setups.
func storageID(s any) string {
	if str, ok := s.(fmt.Stringer); ok {
		return str.String()
	}
	return fmt.Sprintf("%T", s)
}

// pooledNode is a node.Node in a UsagePool: the last configuration to let
// go of it stops its background work.
type pooledNode struct{ *node.Node }

func (n pooledNode) Destruct() error {
	n.Stop()
	return nil
}

// platformPool holds one platform.Service per kind of platform client
// on this node: every handler, site and config that calls the platform the
// same way shares one cache of access tokens, so an app's token is fetched
// once per node and survives reloads.
var platformPool = caddy.NewUsagePool()

// pooledPlatform is a platform.Service in a UsagePool. It has no
// background work: Destruct only lets the cache go.
type pooledPlatform struct{ *platform.Service }

func (pooledPlatform) Destruct() error { return nil }

// limiterPool holds the per-client-IP limiters, one per setting, so that a
// reload keeps every client's count and every backoff: a reload must not
// hand an attacker a fresh allowance.
var limiterPool = caddy.NewUsagePool()

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
		node.EveryTick(ctx, window, l.Sweep)
	}()
	return l
}

func (l *limiter) Destruct() error {
	l.stop()
	<-l.done
	return nil
}

var (
	_ caddy.Destructor = pooledNode{}
	_ caddy.Destructor = pooledPlatform{}
	_ caddy.Destructor = (*limiter)(nil)
)
