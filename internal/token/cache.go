package token

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// DefaultCacheMaxCost is the memory budget of a Cache created with maxCost 0.
const DefaultCacheMaxCost int64 = 64 << 20

const (
	// cacheEntryBytesEstimate is a typical entry: a few-hundred-byte token
	// kept for comparison plus the caller's value. It only sizes ristretto's
	// admission counters, not the memory bound.
	cacheEntryBytesEstimate = 512
	// cacheCountersPerEntry follows ristretto's advice of ten counters per
	// item the cache is expected to hold when full.
	cacheCountersPerEntry = 10
	// cacheMinCounters keeps small caches' admission policy meaningful.
	cacheMinCounters = 10_000
)

// cacheEntry is what ristretto stores for one verified token.
type cacheEntry[V any] struct {
	// token is the full token. Ristretto keys entries by a 128-bit
	// non-cryptographic hash only; comparing the token on Get makes a hash
	// collision a miss instead of handing out someone else's identity.
	token string
	value V
	// expires is the token's own expiry, checked on every Get: ristretto's
	// TTL is enforced in coarse buckets and against the wall clock, not the
	// caller's now.
	expires time.Time
}

// Cache remembers tokens that were already verified, so the gate can skip the
// signature check for a token it has seen. Only put tokens in it after a
// successful Verify. It is safe for concurrent use.
type Cache[V any] struct {
	entries *ristretto.Cache[string, cacheEntry[V]]
	// rejectedHits counts ristretto hits that Get turned into misses
	// (expired entry or hash collision), so Metrics reports what callers saw.
	rejectedHits atomic.Uint64
}

// NewCache returns a Cache that holds roughly maxCost bytes of entries, as
// estimated by the cost passed to Set (plus ristretto's small per-item
// overhead). maxCost 0 means DefaultCacheMaxCost.
func NewCache[V any](maxCost int64) (*Cache[V], error) {
	if maxCost < 0 {
		return nil, errors.New("token: cache max cost must not be negative")
	}
	if maxCost == 0 {
		maxCost = DefaultCacheMaxCost
	}
	counters := max(maxCost/cacheEntryBytesEstimate*cacheCountersPerEntry, cacheMinCounters)
	entries, err := ristretto.NewCache(&ristretto.Config[string, cacheEntry[V]]{
		NumCounters: counters,
		MaxCost:     maxCost,
		BufferItems: 64, // ristretto's recommended Get buffer size
		Metrics:     true,
	})
	if err != nil {
		return nil, err
	}
	return &Cache[V]{entries: entries}, nil
}

// Get returns the value cached for token if there is one and the token has
// not expired at now.
func (c *Cache[V]) Get(token string, now time.Time) (V, bool) {
	entry, ok := c.entries.Get(token)
	if !ok {
		var zero V
		return zero, false
	}
	if entry.token != token || !now.Before(entry.expires) {
		c.rejectedHits.Add(1)
		var zero V
		return zero, false
	}
	return entry.value, true
}

// Set caches v for token until expires; it does nothing if expires has
// already passed. cost is the caller's estimate of the bytes the entry
// retains, normally len(token) plus the size of v (the token itself is kept
// for comparison); a cost <= 0 is charged as len(token).
//
// Set is asynchronous and may be dropped under contention or refused by the
// admission policy: a Get right after Set can miss. That only costs one more
// signature check. Tests call Wait.
func (c *Cache[V]) Set(token string, v V, expires time.Time, cost int64) {
	ttl := time.Until(expires)
	if ttl <= 0 {
		// Also guards against ristretto reading a zero TTL as "never expires".
		return
	}
	if cost <= 0 {
		cost = int64(len(token))
	}
	c.entries.SetWithTTL(token, cacheEntry[V]{token: token, value: v, expires: expires}, cost, ttl)
}

// Wait blocks until every earlier Set has been applied. Meant for tests.
func (c *Cache[V]) Wait() { c.entries.Wait() }

// Close stops the cache's background goroutines. Get and Set on a closed
// cache are harmless no-ops that miss.
func (c *Cache[V]) Close() { c.entries.Close() }

// Metrics reports lookups since the cache was created. Entries Get refused
// (expired, or a hash collision) count as misses.
func (c *Cache[V]) Metrics() (hits, misses uint64) {
	// Read our correction first: every rejection follows a ristretto hit, so
	// hits read afterwards can never be smaller than it.
	rejected := c.rejectedHits.Load()
	hits = c.entries.Metrics.Hits()
	misses = c.entries.Metrics.Misses()
	if hits < rejected {
		rejected = hits
	}
	return hits - rejected, misses + rejected
}
