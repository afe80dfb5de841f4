// Package store keeps the gateway's records in Caddy's storage: users (the
// platform's session_key, the profile, the phone number), sessions (the
// refresh-token hash and expiry), exchanged codes, web login states and
// revocations, one file per record kind. Because it only needs
// certmagic.Storage, every Caddy node that shares a storage backend shares
// these records, and a restart finds them where it left them.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
)

// Prefix is the storage folder that holds everything this gateway writes.
const Prefix = "wxauth"

// ErrNotFound means the record does not exist (never stored, or removed).
var ErrNotFound = errors.New("not found")

// Store reads and writes records in Caddy storage.
type Store struct {
	storage certmagic.Storage
	avatars *avatar.Store // for the sweep of replaced images

	// layoutCurrent is set once the records of older layouts are known
	// to be moved (layout.json says so).
	layoutCurrent atomic.Bool

	// userLocks serialise read-modify-write of one user's record on this
	// node, so a login and a profile update of the same user cannot undo
	// each other. Striped: a fixed array, no per-user allocation.
	userLocks [64]sync.Mutex
	lockSeed  maphash.Seed
}

// NewStore returns a Store on top of storage (usually ctx.Storage()).
func NewStore(storage certmagic.Storage) *Store {
	marked := markedStorage{storage}
	return &Store{storage: marked, avatars: avatar.NewStore(marked), lockSeed: maphash.MakeSeed()}
}

// Storage is the underlying storage, for callers that need its locks (or
// keep records of their own there), its failures marked with ErrStorage.
func (s *Store) Storage() certmagic.Storage { return s.storage }

func (s *Store) load(ctx context.Context, key string, v any) error {
	data, err := s.loadRaw(ctx, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("storage record %s is corrupt (%v); delete it to start over", key, err)
	}
	return nil
}

func (s *Store) loadRaw(ctx context.Context, key string) ([]byte, error) {
	data, err := s.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading %s from storage: %w", key, err)
	}
	return data, nil
}

// list is the keys directly in dir; a folder that is not there is empty.
func (s *Store) list(ctx context.Context, dir string) ([]string, error) {
	keys, err := s.storage.List(ctx, dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", dir, err)
	}
	return keys, nil
}

func (s *Store) save(ctx context.Context, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", key, err)
	}
	if err := s.storage.Store(ctx, key, data); err != nil {
		return fmt.Errorf("saving %s to storage: %w", key, err)
	}
	return nil
}

// concurrently runs the storage calls fns at once and waits for them all:
// on a network storage each is a round trip, and a request that makes
// several that do not depend on each other should wait for one.
func concurrently(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns[1:] {
		wg.Go(func() { errs[i+1] = fn() })
	}
	errs[0] = fns[0]()
	wg.Wait()
	return errors.Join(errs...)
}

// remove deletes a key; one that is gone already is fine.
func (s *Store) remove(ctx context.Context, key string) error {
	if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}
