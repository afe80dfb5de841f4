package avatar

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Minimal files of each accepted kind: the signature and a little body.
var (
	jpegBytes = append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0}, bytes.Repeat([]byte{7}, 40)...)
	pngBytes  = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"), bytes.Repeat([]byte{1}, 40)...)
	webpBytes = append([]byte("RIFF\x24\x00\x00\x00WEBPVP8 "), bytes.Repeat([]byte{2}, 40)...)
)

func TestSniff(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"jpeg", jpegBytes, JPEG},
		{"png", pngBytes, PNG},
		{"webp", webpBytes, WebP},
		{"empty", nil, ""},
		{"gif", []byte("GIF89a\x01\x00\x01\x00"), ""},
		{"html", []byte("<html><script>alert(1)</script>"), ""},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), ""},
		{"truncated jpeg", []byte{0xFF, 0xD8}, ""},
		{"truncated png", []byte("\x89PNG\r\n"), ""},
		{"riff but not webp", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ""},
		{"short riff", []byte("RIFF\x24\x00\x00"), ""},
		{"png signature later", append([]byte("x"), pngBytes...), ""},
	}
	for _, c := range cases {
		if got := Sniff(c.data); got != c.want {
			t.Errorf("%s: Sniff = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestIDAndValidID(t *testing.T) {
	id := ID("wxa", "o1", pngBytes)
	if !ValidID(id) {
		t.Fatalf("ID %q is not a ValidID", id)
	}
	if ID("wxa", "o1", pngBytes) != id || ID("wxa", "o1", jpegBytes) == id {
		t.Fatal("ID is not a function of the content")
	}
	if ID("wxa", "o2", pngBytes) == id || ID("wxb", "o1", pngBytes) == id {
		t.Fatal("two users share an image id")
	}
	shared := sharedID(pngBytes)
	if !ValidID(shared) {
		t.Fatalf("an image id from before owners, %q, is no longer valid", shared)
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.ToUpper(id), id[:64], id + "0", "x" + id[1:], strings.Repeat("g", 64), id[:60] + "/../", "u" + shared[:63]} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
	for url, want := range map[string]string{
		"https://gw.example/wx/avatar/" + id:     id,
		"https://cdn.example/a/" + id:            id,
		"https://gw.example/wx/avatar/" + shared: "",
		"https://thirdwx.qlogo.cn/mmopen/x/132":  "",
		id:                                       "",
	} {
		if got, ok := IDOf(url); got != want && ok || ok != (want != "") {
			t.Errorf("IDOf(%q) = %q, %v; want %q", url, got, ok, want)
		}
	}
}

func newStore(t *testing.T) (*Store, string) {
	dir := t.TempDir()
	return NewStore(&certmagic.FileStorage{Path: dir}), dir
}

// save stores img for user o1 of wxa, as a profile update does.
func save(t *testing.T, s *Store, img []byte) (string, error) {
	t.Helper()
	return s.Save(context.Background(), "wxa", "o1", img, func(string) error { return nil })
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, img := range [][]byte{jpegBytes, pngBytes, webpBytes} {
		id, err := save(t, s, img)
		if err != nil {
			t.Fatal(err)
		}
		if id != ID("wxa", "o1", img) {
			t.Fatalf("Save returned id %q, want the owner's content id %q", id, ID("wxa", "o1", img))
		}
		// Saving again is harmless and gives the same id.
		if again, err := save(t, s, img); err != nil || again != id {
			t.Fatalf("second Save = %q, %v", again, err)
		}
		data, ct, err := s.Load(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, img) || ct != Sniff(img) {
			t.Fatalf("Load gave %d bytes of %q, want the %d bytes saved as %q", len(data), ct, len(img), Sniff(img))
		}
	}
}

// Images stored before they had owners are still served.
func TestLoadSharedImage(t *testing.T) {
	s, dir := newStore(t)
	id := sharedID(pngBytes)
	if err := os.MkdirAll(filepath.Join(dir, storageDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, storageDir, id), pngBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if data, ct, err := s.Load(context.Background(), id); err != nil || !bytes.Equal(data, pngBytes) || ct != PNG {
		t.Fatalf("Load(shared) = %d bytes, %q, %v", len(data), ct, err)
	}
}

func TestSaveRefuses(t *testing.T) {
	s, dir := newStore(t)
	big := append(append([]byte(nil), pngBytes...), make([]byte, MaxSize)...)
	for name, data := range map[string][]byte{
		"not an image": []byte("<html>"),
		"too large":    big,
	} {
		if _, err := save(t, s, data); err == nil {
			t.Errorf("%s: Save succeeded", name)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, storageDir)); len(entries) != 0 {
		t.Fatalf("refused images were stored: %v", entries)
	}
}

func TestLoadMissingAndInvalid(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, _, err := s.Load(ctx, ID("wxa", "o1", pngBytes)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing avatar: err = %v, want ErrNotFound", err)
	}
	if _, _, err := s.Load(ctx, "../users/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("invalid id: err = %v, want ErrNotFound", err)
	}
}

// A record whose bytes no longer match its id is not served.
func TestLoadDamaged(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	id, err := save(t, s, pngBytes)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storageDir, id)
	for name, record := range map[string][]byte{
		"other image":  ownedRecord("wxa", "o1", jpegBytes),
		"other owner":  ownedRecord("wxa", "o2", pngBytes),
		"bare image":   pngBytes,
		"no image":     []byte(`{"appid":"wxa","openid":"o1"}`),
		"broken owner": append([]byte("{\n"), pngBytes...),
	} {
		if err := os.WriteFile(path, record, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Load(ctx, id)
		if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "damaged") {
			t.Errorf("%s: err = %v, want a 'damaged' error", name, err)
		}
	}
}

// A replaced image is removed once its grace has passed, unless its owner
// made it their avatar again; images no one replaced are never read.
func TestSweepDiscarded(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	const base = "https://gw.example/wx/avatar/"
	old, _ := save(t, s, pngBytes)
	back, _ := save(t, s, jpegBytes)
	kept, _ := save(t, s, webpBytes)
	current := map[string]string{"o1": base + back} // o1 went back to the jpeg
	for _, id := range []string{old, back} {
		if err := s.Discard(ctx, base+id, "wxa", "o1", now); err != nil {
			t.Fatal(err)
		}
	}
	// Not ours: nothing to note.
	if err := s.Discard(ctx, "https://thirdwx.qlogo.cn/x/132", "wxa", "o1", now); err != nil {
		t.Fatal(err)
	}
	lookup := func(_ context.Context, appid, openid string) (string, error) { return current[openid], nil }

	if n, err := s.SweepDiscarded(ctx, now.Add(time.Hour), 24*time.Hour, lookup); err != nil || n != 0 {
		t.Fatalf("within the grace: removed %d, %v", n, err)
	}
	n, err := s.SweepDiscarded(ctx, now.Add(25*time.Hour), 24*time.Hour, lookup)
	if err != nil || n != 1 {
		t.Fatalf("after the grace: removed %d, %v; want the one replaced for good", n, err)
	}
	if _, _, err := s.Load(ctx, old); !errors.Is(err, ErrNotFound) {
		t.Errorf("the replaced image is still there: %v", err)
	}
	for _, id := range []string{back, kept} {
		if _, _, err := s.Load(ctx, id); err != nil {
			t.Errorf("image %s was removed: %v", id[:8], err)
		}
	}
	// Saving an image again takes it off the list.
	if err := s.Discard(ctx, base+kept, "wxa", "o1", now); err != nil {
		t.Fatal(err)
	}
	if _, err := save(t, s, webpBytes); err != nil {
		t.Fatal(err)
	}
	if n, err := s.SweepDiscarded(ctx, now.Add(48*time.Hour), 24*time.Hour, lookup); err != nil || n != 0 {
		t.Errorf("an image saved again was swept: %d, %v", n, err)
	}
}
