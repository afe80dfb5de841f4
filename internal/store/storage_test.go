package store

import (
	"context"
	"errors"
	"io/fs"
	"testing"

	"github.com/caddyserver/certmagic"
)

// failingStorage refuses every write.
type failingStorage struct{ certmagic.Storage }

var errDiskFull = errors.New("disk full")

func (failingStorage) Store(context.Context, string, []byte) error { return errDiskFull }

// Storage failures are marked as such, through every layer that wraps
// them; "not there" is an answer, not a failure.
func TestStorageFailuresAreMarked(t *testing.T) {
	ctx := context.Background()
	s := NewStore(failingStorage{&certmagic.FileStorage{Path: t.TempDir()}})
	err := s.SaveUser(ctx, &User{AppID: "wxa", OpenID: "o1"})
	if !errors.Is(err, ErrStorage) || !errors.Is(err, errDiskFull) {
		t.Fatalf("a failed write: %v, want it marked ErrStorage and still the storage's error", err)
	}
	if _, err := s.LoadUser(ctx, "wxa", "o1"); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrStorage) {
		t.Errorf("a missing record: %v, want ErrNotFound only", err)
	}
	if _, err := s.Storage().Load(ctx, "nothing"); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrStorage) {
		t.Errorf("a missing key through Storage(): %v", err)
	}
	if err := s.Storage().Store(ctx, "k", nil); !errors.Is(err, ErrStorage) {
		t.Errorf("a failed write through Storage(): %v", err)
	}
}
