package avatar

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	id := ID(pngBytes)
	if !ValidID(id) {
		t.Fatalf("ID %q is not a ValidID", id)
	}
	if ID(pngBytes) != id || ID(jpegBytes) == id {
		t.Fatal("ID is not a function of the content alone")
	}
	for _, bad := range []string{"", "../../etc/passwd", strings.ToUpper(id), id[:63], id + "0", strings.Repeat("g", 64), id[:60] + "/../"} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func newStore(t *testing.T) (*Store, string) {
	dir := t.TempDir()
	return NewStore(&certmagic.FileStorage{Path: dir}), dir
}

func TestSaveLoadRoundTrip(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, img := range [][]byte{jpegBytes, pngBytes, webpBytes} {
		id, err := s.Save(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		if id != ID(img) {
			t.Fatalf("Save returned id %q, want the content id %q", id, ID(img))
		}
		// Saving again is harmless and gives the same id.
		if again, err := s.Save(ctx, img); err != nil || again != id {
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

func TestSaveRefuses(t *testing.T) {
	s, dir := newStore(t)
	ctx := context.Background()
	big := append(append([]byte(nil), pngBytes...), make([]byte, MaxSize)...)
	for name, data := range map[string][]byte{
		"not an image": []byte("<html>"),
		"too large":    big,
	} {
		if _, err := s.Save(ctx, data); err == nil {
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
	if _, _, err := s.Load(ctx, ID(pngBytes)); !errors.Is(err, ErrNotFound) {
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
	id, err := s.Save(ctx, pngBytes)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storageDir, id)
	if err := os.WriteFile(path, append([]byte(nil), jpegBytes...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.Load(ctx, id)
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged record: err = %v, want a 'damaged' error", err)
	}
}
