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
	"path"
	"strings"
	"sync"

	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
)

// Prefix is the storage folder that holds everything this gateway writes.
const Prefix = "wxauth"

// ErrNotFound means the record does not exist (never stored, or removed).
var ErrNotFound = errors.New("not found")

// isRecordKey reports whether a listed key is one of our records: a
// ".json" file, not a folder and not a temporary file that a crash left
// behind (file storage writes each record to a randomly named file beside
// it, then renames that).
func isRecordKey(key string) bool {
	return strings.HasSuffix(path.Base(key), ".json")
}

// Store reads and writes records in Caddy storage.
type Store struct {
	storage certmagic.Storage
	avatars *avatar.Store // for the sweep of replaced images

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

// Storage folders, for listing.
const (
	sessionsDir = Prefix + "/sessions"
	codesDir    = Prefix + "/codes"
	revokedDir  = Prefix + "/revoked"
)

func (s *Store) load(ctx context.Context, key string, v any) error {
	data, err := s.storage.Load(ctx, key)
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("loading %s from storage: %w", key, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("storage record %s is corrupt (%v); delete it to start over", key, err)
	}
	return nil
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
