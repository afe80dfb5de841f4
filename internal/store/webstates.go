package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// WebState is a web login in progress: what the state sent to the
// platform's authorize page stands for. It lives in the codes folder (it is
// a one-time value like a code), so the sweep removes it once it expires.
type WebState struct {
	AppID   string    `json:"appid"`
	Next    string    `json:"next"` // where to send the browser afterwards
	Expires time.Time `json:"expires"`
}

func webStateKey(state string) string { return codeKey("", "webstate\x00"+state) }

func webStateLockName(state string) string {
	sum := sha256.Sum256([]byte("webstate\x00" + state))
	return Prefix + "/webstates/" + hex.EncodeToString(sum[:])
}

// SaveWebState remembers a web login started with state.
func (s *Store) SaveWebState(ctx context.Context, state string, ws *WebState) error {
	return s.save(ctx, webStateKey(state), ws)
}

// TakeWebState returns the web login started with state and forgets it:
// a state is good once, on whichever node the browser comes back to. It
// returns ErrNotFound for a state never issued, already taken, or expired
// at now.
func (s *Store) TakeWebState(ctx context.Context, state string, now time.Time) (*WebState, error) {
	lock := webStateLockName(state)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the web login state: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()

	var ws WebState
	key := webStateKey(state)
	if err := s.load(ctx, key, &ws); err != nil {
		return nil, err
	}
	if err := s.storage.Delete(ctx, key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("forgetting the web login state: %w", err)
	}
	if !now.Before(ws.Expires) {
		return nil, ErrNotFound
	}
	return &ws, nil
}
