// Package storagetest has Caddy storages for tests of what is built on
// storage: one that counts the calls made to it, and one that refuses them
// all once closed, the way a storage module whose Cleanup has run does.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"
)

// Calls counts storage calls by method.
type Calls struct {
	Load, Store, Delete, List, Stat, Exists, Lock, Unlock int64
}

// Data is the number of calls that read or write records (all but locks).
func (c Calls) Data() int64 { return c.Load + c.Store + c.Delete + c.List + c.Stat + c.Exists }

// All is the number of calls.
func (c Calls) All() int64 { return c.Data() + c.Lock + c.Unlock }

// Counting is a certmagic.Storage that counts the calls made to the one it
// wraps, and the keys loaded, for tests that hold code to a number of
// round trips.
type Counting struct {
	certmagic.Storage

	load, store, del, list, stat, exists, lock, unlock atomic.Int64

	mu             sync.Mutex
	loaded, listed []string
}

// NewCounting wraps s.
func NewCounting(s certmagic.Storage) *Counting { return &Counting{Storage: s} }

// Calls are the counts since the last Reset.
func (c *Counting) Calls() Calls {
	return Calls{Load: c.load.Load(), Store: c.store.Load(), Delete: c.del.Load(), List: c.list.Load(),
		Stat: c.stat.Load(), Exists: c.exists.Load(), Lock: c.lock.Load(), Unlock: c.unlock.Load()}
}

// Loaded are the keys loaded since the last Reset whose path holds part.
func (c *Counting) Loaded(part string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, k := range c.loaded {
		if strings.Contains(k, part) {
			out = append(out, k)
		}
	}
	return out
}

// Listed are the folders listed since the last Reset.
func (c *Counting) Listed() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.listed...)
}

// Reset sets every count to zero.
func (c *Counting) Reset() {
	for _, n := range []*atomic.Int64{&c.load, &c.store, &c.del, &c.list, &c.stat, &c.exists, &c.lock, &c.unlock} {
		n.Store(0)
	}
	c.mu.Lock()
	c.loaded, c.listed = nil, nil
	c.mu.Unlock()
}

func (c *Counting) Load(ctx context.Context, key string) ([]byte, error) {
	c.load.Add(1)
	c.mu.Lock()
	c.loaded = append(c.loaded, key)
	c.mu.Unlock()
	return c.Storage.Load(ctx, key)
}

func (c *Counting) Store(ctx context.Context, key string, value []byte) error {
	c.store.Add(1)
	return c.Storage.Store(ctx, key, value)
}

func (c *Counting) Delete(ctx context.Context, key string) error {
	c.del.Add(1)
	return c.Storage.Delete(ctx, key)
}

func (c *Counting) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	c.list.Add(1)
	c.mu.Lock()
	c.listed = append(c.listed, path)
	c.mu.Unlock()
	return c.Storage.List(ctx, path, recursive)
}

func (c *Counting) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	c.stat.Add(1)
	return c.Storage.Stat(ctx, key)
}

func (c *Counting) Exists(ctx context.Context, key string) bool {
	c.exists.Add(1)
	return c.Storage.Exists(ctx, key)
}

func (c *Counting) Lock(ctx context.Context, name string) error {
	c.lock.Add(1)
	return c.Storage.Lock(ctx, name)
}

func (c *Counting) Unlock(ctx context.Context, name string) error {
	c.unlock.Add(1)
	return c.Storage.Unlock(ctx, name)
}

// ErrClosed is what a Closable answers once closed.
var ErrClosed = errors.New("storage is closed (its configuration was cleaned up)")

// Closable is a certmagic.Storage that refuses every call once Close has
// run, as Redis storage does after its Cleanup ("redis: client is
// closed"), and counts the calls it refused.
type Closable struct {
	certmagic.Storage
	closed  atomic.Bool
	refused atomic.Int64
}

// NewClosable wraps s.
func NewClosable(s certmagic.Storage) *Closable { return &Closable{Storage: s} }

// String is the wrapped storage's, so that a config's storage is known by
// the same name before and after a reload (as Redis storage's is).
func (c *Closable) String() string {
	if s, ok := c.Storage.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", c.Storage)
}

// Close makes every later call fail with ErrClosed.
func (c *Closable) Close() { c.closed.Store(true) }

// Refused is the number of calls made after Close.
func (c *Closable) Refused() int64 { return c.refused.Load() }

func (c *Closable) check() error {
	if c.closed.Load() {
		c.refused.Add(1)
		return ErrClosed
	}
	return nil
}

func (c *Closable) Load(ctx context.Context, key string) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Storage.Load(ctx, key)
}

func (c *Closable) Store(ctx context.Context, key string, value []byte) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Storage.Store(ctx, key, value)
}

func (c *Closable) Delete(ctx context.Context, key string) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Storage.Delete(ctx, key)
}

func (c *Closable) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return c.Storage.List(ctx, path, recursive)
}

func (c *Closable) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	if err := c.check(); err != nil {
		return certmagic.KeyInfo{}, err
	}
	return c.Storage.Stat(ctx, key)
}

func (c *Closable) Exists(ctx context.Context, key string) bool {
	if c.check() != nil {
		return false
	}
	return c.Storage.Exists(ctx, key)
}

func (c *Closable) Lock(ctx context.Context, name string) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Storage.Lock(ctx, name)
}

func (c *Closable) Unlock(ctx context.Context, name string) error {
	if err := c.check(); err != nil {
		return err
	}
	return c.Storage.Unlock(ctx, name)
}
