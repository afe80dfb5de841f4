package integration

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

	"github.com/wxauth/caddy-wxauth/internal/storagetest"
)

func init() {
	caddy.RegisterModule(faultyStorage{})
}

// storageFaults is what the faulty storage fails right now: writes under
// this key prefix ("" for none). Tests set it; every config's faulty
// storage reads it.
var storageFaults atomic.Value // string

// errInjected is the failure the faulty storage returns.
var errInjected = errors.New("injected storage fault: no space left on device")

// faultyStorage is Caddy's file_system storage that fails writes under a
// prefix on demand: a real storage module, configured in the Caddyfile
// (`storage wxauth_test_faulty <root>`), for the storage-failure tests.
type faultyStorage struct {
	Root string `json:"root"`
}

func (faultyStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.wxauth_test_faulty",
		New: func() caddy.Module { return new(faultyStorage) },
	}
}

func (s faultyStorage) CertMagicStorage() (certmagic.Storage, error) {
	return &faultyFileStorage{FileStorage: &certmagic.FileStorage{Path: s.Root}}, nil
}

func (s *faultyStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Root = d.Val()
	return nil
}

type faultyFileStorage struct {
	*certmagic.FileStorage
}

func failing(key string) bool {
	prefix, _ := storageFaults.Load().(string)
	return prefix != "" && strings.HasPrefix(key, prefix)
}

func (s *faultyFileStorage) Store(ctx context.Context, key string, value []byte) error {
	if failing(key) {
		return errInjected
	}
	return s.FileStorage.Store(ctx, key, value)
}

func (s *faultyFileStorage) Delete(ctx context.Context, key string) error {
	if failing(key) {
		return errInjected
	}
	return s.FileStorage.Delete(ctx, key)
}

// String keeps the state key of every config on the same root the same,
// as file_system's does.
func (s *faultyFileStorage) String() string { return "FaultyFileStorage:" + s.Path }

var (
	_ caddy.StorageConverter = faultyStorage{}
	_ caddyfile.Unmarshaler  = (*faultyStorage)(nil)
)

func init() {
	caddy.RegisterModule(new(closingStorage))
}

// closings are the closing storages of every config loaded, so that a
// test can count the calls made to them after their Cleanup.
var closings struct {
	sync.Mutex
	all []*storagetest.Closable
}

// refusedByClosed is the number of calls made to closing storages after
// their Cleanup.
func refusedByClosed() int64 {
	closings.Lock()
	defer closings.Unlock()
	var n int64
	for _, c := range closings.all {
		n += c.Refused()
	}
	return n
}

// closingStorage is Caddy's file_system storage that refuses every call
// once its configuration is cleaned up, as the Redis storage does ("redis:
// client is closed"): `storage wxauth_test_closing <root>`, for the reload
// tests. Its String is the same for every config on one root, as Redis
// storage's is for one server.
type closingStorage struct {
	Root string `json:"root"`

	storage *storagetest.Closable
}

func (*closingStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "caddy.storage.wxauth_test_closing",
		New: func() caddy.Module { return new(closingStorage) },
	}
}

func (s *closingStorage) Provision(caddy.Context) error {
	s.storage = storagetest.NewClosable(&certmagic.FileStorage{Path: s.Root})
	closings.Lock()
	closings.all = append(closings.all, s.storage)
	closings.Unlock()
	return nil
}

func (s *closingStorage) CertMagicStorage() (certmagic.Storage, error) { return s.storage, nil }

func (s *closingStorage) Cleanup() error {
	s.storage.Close()
	return nil
}

func (s *closingStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Root = d.Val()
	return nil
}

var (
	_ caddy.StorageConverter = (*closingStorage)(nil)
	_ caddy.Provisioner      = (*closingStorage)(nil)
	_ caddy.CleanerUpper     = (*closingStorage)(nil)
)
