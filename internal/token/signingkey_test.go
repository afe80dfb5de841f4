package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

func TestLoadOrCreateEd25519CreatesThenLoads(t *testing.T) {
	ctx := t.Context()
	storage := &certmagic.FileStorage{Path: t.TempDir()}

	created, err := LoadOrCreateEd25519(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != ed25519.PrivateKeySize {
		t.Fatalf("key has %d bytes", len(created))
	}
	if !storage.Exists(ctx, Ed25519StorageKey) {
		t.Fatal("key was not stored")
	}
	stored, err := storage.Load(ctx, Ed25519StorageKey)
	if err != nil {
		t.Fatal(err)
	}
	if block, _ := pem.Decode(stored); block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("stored key is not a PRIVATE KEY PEM block")
	}

	loaded, err := LoadOrCreateEd25519(ctx, storage)
	if err != nil {
		t.Fatal(err)
	}
	if !created.Equal(loaded) {
		t.Fatal("second call returned a different key")
	}
	// The lock used for creation must have been released.
	if err := storage.Lock(ctx, signingLockName); err != nil {
		t.Fatal(err)
	}
	if err := storage.Unlock(ctx, signingLockName); err != nil {
		t.Fatal(err)
	}
}

// Two nodes (separate FileStorage values on one directory) starting together
// must end up with the same key.
func TestLoadOrCreateEd25519RacingNodesAgree(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	const nodes = 2
	keys := make([]ed25519.PrivateKey, nodes)
	errs := make([]error, nodes)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range nodes {
		storage := &certmagic.FileStorage{Path: dir}
		wg.Go(func() {
			<-start
			keys[i], errs[i] = LoadOrCreateEd25519(ctx, storage)
		})
	}
	close(start)
	wg.Wait()

	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	if !keys[0].Equal(keys[1]) {
		t.Fatal("racing nodes got different keys")
	}
	stored, err := LoadOrCreateEd25519(ctx, &certmagic.FileStorage{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Equal(keys[0]) {
		t.Fatal("stored key differs from the one the nodes use")
	}
}

func TestLoadOrCreateEd25519CorruptKey(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	edKey := testEd25519Key(t)
	edDER, err := x509.MarshalPKCS8PrivateKey(edKey)
	if err != nil {
		t.Fatal(err)
	}

	cases := map[string][]byte{
		"garbage":           []byte("this is not a key at all"),
		"empty":             {},
		"wrong PEM type":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: edDER}),
		"truncated DER":     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER[:len(edDER)-5]}),
		"ECDSA not Ed25519": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			storage := &certmagic.FileStorage{Path: t.TempDir()}
			if err := storage.Store(ctx, Ed25519StorageKey, content); err != nil {
				t.Fatal(err)
			}
			key, err := LoadOrCreateEd25519(ctx, storage)
			if err == nil {
				t.Fatalf("corrupt key accepted (%d bytes)", len(key))
			}
			msg := err.Error()
			if !strings.Contains(msg, Ed25519StorageKey) {
				t.Errorf("error does not name the storage key: %q", msg)
			}
			if len(content) > 0 && strings.Contains(msg, string(content)) {
				t.Errorf("error echoes the stored bytes: %q", msg)
			}
			// A corrupt key is reported, never silently replaced.
			after, err := storage.Load(ctx, Ed25519StorageKey)
			if err != nil || string(after) != string(content) {
				t.Error("corrupt key was overwritten")
			}
		})
	}
}
