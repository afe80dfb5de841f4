package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"syscall"

	"github.com/caddyserver/certmagic"
)

// ErrStorage marks the errors of the storage under the store (a disk, a
// Redis server), as opposed to the store's own answers such as ErrNotFound:
// errors.Is(err, ErrStorage) tells a caller that what failed was storage,
// and that the same request may well work once storage is back.
var ErrStorage = errors.New("the storage failed")

// storageError is an error of the storage, marked with ErrStorage; its
// text is the storage's own.
type storageError struct{ err error }

func (e storageError) Error() string   { return e.err.Error() }
func (e storageError) Unwrap() []error { return []error{e.err, ErrStorage} }

// marked marks err as the storage's, except for "not there", which is an
// answer, not a failure.
func marked(err error) error {
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return storageError{err}
}

// markedStorage is a certmagic.Storage whose failures are marked with
// ErrStorage, so that every user of the store's storage (its locks too)
// can tell them apart.
type markedStorage struct{ certmagic.Storage }

func (m markedStorage) Lock(ctx context.Context, name string) error {
	return marked(m.Storage.Lock(ctx, name))
}

func (m markedStorage) Unlock(ctx context.Context, name string) error {
	return marked(m.Storage.Unlock(ctx, name))
}

func (m markedStorage) Store(ctx context.Context, key string, value []byte) error {
	return marked(m.Storage.Store(ctx, key, value))
}

func (m markedStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := m.Storage.Load(ctx, key)
	return v, marked(err)
}

func (m markedStorage) Delete(ctx context.Context, key string) error {
	return marked(m.Storage.Delete(ctx, key))
}

func (m markedStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	if files, ok := m.Storage.(*certmagic.FileStorage); ok && !recursive {
		keys, err := listFolder(files, dir)
		return keys, marked(err)
	}
	keys, err := m.Storage.List(ctx, dir, recursive)
	return keys, marked(err)
}

// listFolder is certmagic.FileStorage's List(dir, false) without its
// cost: that walks the folder with filepath.Walk, an lstat per entry,
// which made up most of a revocation sync and of a sweep on Caddy's
// default storage. Reading the folder's names gives the same keys, in the
// same order.
func listFolder(files *certmagic.FileStorage, dir string) ([]string, error) {
	entries, err := os.ReadDir(files.Filename(dir))
	if errors.Is(err, syscall.ENOTDIR) {
		return nil, nil // List walks a file as a folder with nothing in it
	}
	if err != nil {
		return nil, err
	}
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = path.Join(dir, e.Name())
	}
	return keys, nil
}

func (m markedStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	info, err := m.Storage.Stat(ctx, key)
	return info, marked(err)
}
