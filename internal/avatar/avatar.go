// Package avatar keeps the avatar images users upload (the chooseAvatar
// flow: the mini program uploads a temporary local file) in Caddy storage,
// so that every node sharing the storage can serve them.
//
// Images are recognised by their bytes, never by the type the client claims,
// and stored under an id derived from their owner and their content: the
// same image uploaded twice by one user is stored once, an id names one
// image forever (which is what lets the answer be cached for a year), and
// an image belongs to one user, so that once it is replaced it can be
// removed (see Discard and SweepDiscarded). Images uploaded before ids had
// owners are shared by content and kept.
package avatar

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

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

// ReplacedGrace is how long a replaced image is still served: pages and
// upstream apps that kept its URL (it went upstream in X-WX-AVATAR, and
// access tokens carry it until they expire) have that long to learn the
// new one.
const ReplacedGrace = 7 * 24 * time.Hour

// ErrNotFound means no avatar has that id.
var ErrNotFound = errors.New("avatar: not found")

// The storage folders: the images, and the replaced ones waiting out their
// grace.
const (
	storageDir   = "wxauth/avatars"
	discardedDir = "wxauth/avatars-replaced"
)

// The ids: hex SHA-256, with a leading 'u' for owned images.
const (
	sharedIDLength = 2 * sha256.Size
	ownedIDLength  = 1 + sharedIDLength
	ownedIDPrefix  = "u"
)

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

// ID is the id of app's user openid's image data.
func ID(appid, openid string, data []byte) string {
	content := sha256.Sum256(data)
	sum := sha256.Sum256([]byte("wxauth-avatar|" + appid + "|" + openid + "|" + hex.EncodeToString(content[:])))
	return ownedIDPrefix + hex.EncodeToString(sum[:])
}

// ValidID reports whether id has the shape of an id, so a request path
// never reaches storage with anything else in it.
func ValidID(id string) bool {
	hexPart, ok := strings.CutPrefix(id, ownedIDPrefix)
	if !ok && len(id) != sharedIDLength || ok && len(id) != ownedIDLength {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// IDOf returns the id of the owned image an avatar URL names (anything
// ending in /<id>, whatever avatar_base put before it), and whether it names
// one: URLs of other sites, and of shared images, name none.
func IDOf(avatarURL string) (string, bool) {
	i := strings.LastIndexByte(avatarURL, '/')
	if i < 0 {
		return "", false
	}
	id := avatarURL[i+1:]
	return id, len(id) == ownedIDLength && ValidID(id)
}

func storageKey(id string) string { return storageDir + "/" + id }

func discardedKey(id string) string { return discardedDir + "/" + id + ".json" }

// lockName serialises the writes of one image: its upload and its removal
// after a replacement.
func lockName(id string) string { return storageDir + "/" + id }

// Store reads and writes avatar images in Caddy storage.
type Store struct {
	storage certmagic.Storage
}

// NewStore returns a Store on top of storage (usually ctx.Storage()).
func NewStore(storage certmagic.Storage) *Store {
	return &Store{storage: storage}
}

// Save stores app's user openid's image and returns its id. It refuses
// anything that is not a JPEG, PNG or WebP image or is larger than
// MaxSize: callers check both first, to answer the client precisely. An
// image saved again is no longer discarded. set runs under the image's
// lock once it is stored, to put it in the user's profile: a sweep cannot
// remove it in between.
func (s *Store) Save(ctx context.Context, appid, openid string, data []byte, set func(id string) error) (string, error) {
	if len(data) > MaxSize {
		return "", fmt.Errorf("avatar: refusing to store %d bytes (the limit is %d)", len(data), MaxSize)
	}
	if Sniff(data) == "" {
		return "", errors.New("avatar: refusing to store something that is not a JPEG, PNG or WebP image")
	}
	id := ID(appid, openid, data)
	lock := lockName(id)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return "", fmt.Errorf("locking avatar %s: %w", id, err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()
	// An existing record already holds these exact bytes.
	if !s.storage.Exists(ctx, storageKey(id)) {
		if err := s.storage.Store(ctx, storageKey(id), ownedRecord(appid, openid, data)); err != nil {
			return "", fmt.Errorf("saving avatar %s to storage: %w", id, err)
		}
	}
	if err := s.storage.Delete(ctx, discardedKey(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("keeping avatar %s: %w", id, err)
	}
	return id, set(id)
}

// discarded is the record of a replaced image, waiting out its grace.
type discarded struct {
	AppID  string    `json:"appid"`
	OpenID string    `json:"openid"`
	Since  time.Time `json:"since"`
}

// Discard notes that the owned image of avatarURL (if it names one) has
// been replaced in its owner's profile at now. SweepDiscarded removes it
// once its grace has passed, unless it is the owner's avatar again by then.
func (s *Store) Discard(ctx context.Context, avatarURL, appid, openid string, now time.Time) error {
	id, ok := IDOf(avatarURL)
	if !ok {
		return nil
	}
	data, err := json.Marshal(discarded{AppID: appid, OpenID: openid, Since: now})
	if err != nil {
		return err
	}
	if err := s.storage.Store(ctx, discardedKey(id), data); err != nil {
		return fmt.Errorf("noting replaced avatar %s: %w", id, err)
	}
	return nil
}

// SweepDiscarded removes the images replaced at least grace before now
// that are not their owner's avatar again: current tells the owner's
// avatar URL now ("" for none, or for an owner who is gone). It reads only
// the replaced images' records, and says how many images it removed.
func (s *Store) SweepDiscarded(ctx context.Context, now time.Time, grace time.Duration, current func(ctx context.Context, appid, openid string) (string, error)) (int, error) {
	keys, err := s.storage.List(ctx, discardedDir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing replaced avatars: %w", err)
	}
	removed := 0
	var errs []error
	for _, key := range keys {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		id := strings.TrimSuffix(path.Base(key), ".json")
		if !strings.HasSuffix(key, ".json") || !ValidID(id) {
			continue // not a record (a temporary file a crash left behind)
		}
		gone, err := s.sweepOne(ctx, id, now, grace, current)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

func (s *Store) sweepOne(ctx context.Context, id string, now time.Time, grace time.Duration, current func(ctx context.Context, appid, openid string) (string, error)) (bool, error) {
	lock := lockName(id)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return false, fmt.Errorf("locking avatar %s: %w", id, err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()
	raw, err := s.storage.Load(ctx, discardedKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // saved again meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("loading replaced avatar %s: %w", id, err)
	}
	var d discarded
	if err := json.Unmarshal(raw, &d); err != nil {
		return false, fmt.Errorf("the record of replaced avatar %s is corrupt (%v); delete it", id, err)
	}
	if now.Sub(d.Since) < grace {
		return false, nil
	}
	cur, err := current(ctx, d.AppID, d.OpenID)
	if err != nil {
		return false, err
	}
	curID, _ := IDOf(cur)
	remove := curID != id // else: the owner's avatar again, kept
	if remove {
		if err := s.storage.Delete(ctx, storageKey(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("removing replaced avatar %s: %w", id, err)
		}
	}
	if err := s.storage.Delete(ctx, discardedKey(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("forgetting replaced avatar %s: %w", id, err)
	}
	return remove, nil
}

// Delete removes the owned image an avatar URL names, if it names one (a
// user who is gone takes their avatar along).
func (s *Store) Delete(ctx context.Context, avatarURL string) error {
	id, ok := IDOf(avatarURL)
	if !ok {
		return nil
	}
	lock := lockName(id)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("locking avatar %s: %w", id, err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()
	for _, key := range []string{storageKey(id), discardedKey(id)} {
		if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing avatar %s: %w", id, err)
		}
	}
	return nil
}

// Load returns the image with id and its content type, or ErrNotFound.
func (s *Store) Load(ctx context.Context, id string) ([]byte, string, error) {
	if !ValidID(id) {
		return nil, "", ErrNotFound
	}
	record, err := s.storage.Load(ctx, storageKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", ErrNotFound
	}
	if err != nil {
		return nil, "", fmt.Errorf("loading avatar %s from storage: %w", id, err)
	}
	data, ok := record, sharedID(record) == id
	if len(id) == ownedIDLength {
		data, ok = openOwnedRecord(id, record)
	}
	contentType := Sniff(data)
	if contentType == "" || !ok {
		// Only a storage that was edited by hand or damaged gets here;
		// serving the bytes could serve something other than the image.
		return nil, "", fmt.Errorf("avatar %s in storage is damaged; delete it (the user can upload it again)", id)
	}
	return data, contentType, nil
}

// sharedID is the id images had before they had owners: the hash of their
// bytes alone. Their records are the bare image.
func sharedID(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// owner heads an owned image's record, so that the record proves its id.
type owner struct {
	AppID  string `json:"appid"`
	OpenID string `json:"openid"`
}

// ownedRecord is what storage holds for an owned image: its owner as one
// line of JSON, then the image.
func ownedRecord(appid, openid string, data []byte) []byte {
	head, _ := json.Marshal(owner{AppID: appid, OpenID: openid})
	return append(append(head, '\n'), data...)
}

// openOwnedRecord returns the image of an owned record, and whether the
// record is the one id names.
func openOwnedRecord(id string, record []byte) ([]byte, bool) {
	head, data, ok := bytes.Cut(record, []byte("\n"))
	var o owner
	if !ok || json.Unmarshal(head, &o) != nil {
		return nil, false
	}
	return data, ID(o.AppID, o.OpenID, data) == id
}
