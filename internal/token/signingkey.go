package token

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/certmagic"
)

// Ed25519StorageKey is where the Ed25519 signing key lives in Caddy storage,
// as a PKCS#8 PEM private key. Every node sharing that storage signs and
// verifies with it.
const Ed25519StorageKey = "wxauth/signing/ed25519.pem"

// signingLockName serialises key creation across nodes sharing the storage.
const signingLockName = "wxauth/signing"

const pemTypePrivateKey = "PRIVATE KEY"

// LoadOrCreateEd25519 returns the signing key stored at Ed25519StorageKey,
// creating it on first use. Creation happens under the storage lock
// "wxauth/signing" and re-checks storage once the lock is held, so when
// several nodes start together exactly one key is generated and all of them
// end up using it. The lock is always released, even if ctx is cancelled.
//
// A stored value that is not a PKCS#8 PEM Ed25519 key is an error naming the
// storage key to inspect; it is never overwritten, because replacing the key
// would invalidate every access token already issued.
func LoadOrCreateEd25519(ctx context.Context, storage certmagic.Storage) (key ed25519.PrivateKey, err error) {
	key, err = loadEd25519(ctx, storage)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	if err := storage.Lock(ctx, signingLockName); err != nil {
		return nil, fmt.Errorf("token: taking storage lock %q to create the signing key: %w", signingLockName, err)
	}
	defer func() {
		// A cancelled ctx must not leave the lock held until it goes stale.
		unlockErr := storage.Unlock(context.WithoutCancel(ctx), signingLockName)
		if unlockErr != nil {
			// The key (if any) is stored, so a retry loads it without locking.
			key = nil
			err = errors.Join(err, fmt.Errorf("token: releasing storage lock %q: %w", signingLockName, unlockErr))
		}
	}()

	// Another node may have created the key while we waited for the lock.
	key, err = loadEd25519(ctx, storage)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}

	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("token: generating signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("token: encoding signing key: %w", err)
	}
	encoded := pem.EncodeToMemory(&pem.Block{Type: pemTypePrivateKey, Bytes: der})
	if err := storage.Store(ctx, Ed25519StorageKey, encoded); err != nil {
		return nil, fmt.Errorf("token: storing signing key at %q: %w", Ed25519StorageKey, err)
	}
	return key, nil
}

// loadEd25519 reads and decodes the stored key. A missing key is reported
// with an error that matches fs.ErrNotExist.
func loadEd25519(ctx context.Context, storage certmagic.Storage) (ed25519.PrivateKey, error) {
	data, err := storage.Load(ctx, Ed25519StorageKey)
	if err != nil {
		return nil, fmt.Errorf("token: loading signing key %q from storage: %w", Ed25519StorageKey, err)
	}
	key, reason := decodeEd25519PEM(data)
	if reason != "" {
		return nil, fmt.Errorf("token: signing key stored at %q is unusable (%s); inspect that storage entry — "+
			"replacing it invalidates all issued access tokens", Ed25519StorageKey, reason)
	}
	return key, nil
}

// decodeEd25519PEM parses a PKCS#8 PEM Ed25519 private key. On failure it
// returns a fixed, human-readable reason rather than the parser's error, so
// nothing derived from the stored bytes can reach an error message or log.
func decodeEd25519PEM(data []byte) (ed25519.PrivateKey, string) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, "no PEM block"
	}
	if block.Type != pemTypePrivateKey {
		return nil, "PEM block is not of type " + pemTypePrivateKey
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, "not a PKCS#8 private key"
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, "PKCS#8 key is not Ed25519"
	}
	return key, ""
}
