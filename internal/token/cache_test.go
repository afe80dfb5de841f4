package token

import (
	"testing"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
)

func newTestCache(t testing.TB) *Cache[identity.Identity] {
	t.Helper()
	c, err := NewCache[identity.Identity](1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCacheHitAndExpiry(t *testing.T) {
	c := newTestCache(t)
	id := testIdentity()
	const token = "header.payload.signature"
	expires := time.Now().Add(time.Hour)

	c.Set(token, id, expires, int64(len(token))+256)
	c.Wait()

	now := time.Now()
	got, ok := c.Get(token, now)
	if !ok || got != id {
		t.Fatalf("Get = %+v, %v; want hit", got, ok)
	}
	if _, ok := c.Get("other.token.value", now); ok {
		t.Fatal("hit for a token never set")
	}
	// The stored expiry is checked against the caller's clock.
	if _, ok := c.Get(token, expires); ok {
		t.Fatal("hit at the expiry instant")
	}
	if _, ok := c.Get(token, expires.Add(time.Second)); ok {
		t.Fatal("hit after expiry")
	}

	hits, misses := c.Metrics()
	if hits != 1 || misses != 3 {
		t.Fatalf("Metrics = %d hits, %d misses; want 1, 3", hits, misses)
	}
}

func TestCacheIgnoresAlreadyExpired(t *testing.T) {
	c := newTestCache(t)
	const token = "expired.token.value"
	c.Set(token, testIdentity(), time.Now().Add(-time.Second), 100)
	c.Wait()
	// Ask with a "now" well before the expiry: the entry must simply not exist.
	if _, ok := c.Get(token, time.Now().Add(-time.Hour)); ok {
		t.Fatal("entry stored although it had already expired")
	}
}

func TestCacheRejectsNegativeMaxCostAndDefaultsZero(t *testing.T) {
	if _, err := NewCache[int](-1); err == nil {
		t.Fatal("negative maxCost accepted")
	}
	c, err := NewCache[int](0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := c.entries.MaxCost(); got != DefaultCacheMaxCost {
		t.Fatalf("MaxCost = %d, want %d", got, DefaultCacheMaxCost)
	}
}

func TestCacheClosedIsHarmless(t *testing.T) {
	c, err := NewCache[int](1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c.Set("a.b.c", 1, time.Now().Add(time.Hour), 10)
	c.Wait()
	if _, ok := c.Get("a.b.c", time.Now()); ok {
		t.Fatal("closed cache returned a hit")
	}
}
