// Package avatar keeps the avatar images users upload (the chooseAvatar
// flow: the mini program uploads a temporary local file) in Caddy storage,
// so that every node sharing the storage can serve them.
//
// Images are recognised by their bytes, never by the type the client claims,
// and stored under a content-derived id: the same image uploaded twice is
// stored once, and an id names one image forever, which is what lets the
// answer be cached for a year.
package avatar

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/certmagic"
)

// MaxSize is the largest avatar accepted. The platform's image check
// (img_sec_check) refuses files over 1 MB, so a larger upload could never be
// checked; chooseAvatar's images are far smaller anyway.
const MaxSize = 1 << 20

// The content types served, by what the bytes start with.
const (
	JPEG = "image/jpeg"
	PNG  = "image/png"
	WebP = "image/webp"
)

// ErrNotFound means no avatar has that id.
var ErrNotFound = errors.New("avatar: not found")

// storageDir is the storage folder of avatar images.
const storageDir = "wxauth/avatars"

// idLength is the length of an id: hex SHA-256.
const idLength = 2 * sha256.Size

// Sniff returns the content type of a JPEG, PNG or WebP image, or "" for
// anything else. Only the signature is checked: the image is served with
// that exact type and `nosniff`, so a file that merely starts like an image
// can at worst fail to display.
func Sniff(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF:
		return JPEG
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG
	case len(data) >= 12 && bytes.Equal(data[0:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")):
		return WebP
	}
	return ""
}

// ID is the content-derived id of an image.
func ID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ValidID reports whether id has the shape of an ID, so a request path
// never reaches storage with anything else in it.
func ValidID(id string) bool {
	if len(id) != idLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func storageKey(id string) string { return storageDir + "/" + id }

// Store reads and writes avatar images in Caddy storage.
type Store struct {
	storage certmagic.Storage
}

// NewStore returns a Store on top of storage (usually ctx.Storage()).
func NewStore(storage certmagic.Storage) *Store {
	return &Store{storage: storage}
}

// Save stores an image and returns its id. It refuses anything that is not
// a JPEG, PNG or WebP image or is larger than MaxSize: callers check both
// first, to answer the client precisely.
func (s *Store) Save(ctx context.Context, data []byte) (string, error) {
	if len(data) > MaxSize {
		return "", fmt.Errorf("avatar: refusing to store %d bytes (the limit is %d)", len(data), MaxSize)
	}
	if Sniff(data) == "" {
		return "", errors.New("avatar: refusing to store something that is not a JPEG, PNG or WebP image")
	}
	id := ID(data)
	// Content-addressed: an existing record already holds these exact bytes.
	if s.storage.Exists(ctx, storageKey(id)) {
		return id, nil
	}
	if err := s.storage.Store(ctx, storageKey(id), data); err != nil {
		return "", fmt.Errorf("saving avatar %s to storage: %w", id, err)
	}
	return id, nil
}

// Load returns the image with id and its content type, or ErrNotFound.
func (s *Store) Load(ctx context.Context, id string) ([]byte, string, error) {
	if !ValidID(id) {
		return nil, "", ErrNotFound
	}
	data, err := s.storage.Load(ctx, storageKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("loading avatar %s from storage: %w", id, err)
	}
	contentType := Sniff(data)
	if contentType == "" || ID(data) != id {
		// Only a storage that was edited by hand or damaged gets here;
		// serving the bytes could serve something other than the image.
		return nil, "", fmt.Errorf("avatar %s in storage is damaged; delete it (the user can upload it again)", id)
	}
	return data, contentType, nil
}
