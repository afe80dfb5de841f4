package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// WebState is a web login in progress: what the state sent to the
// platform's authorize page stands for. It is a short-lived record, like a
// code.
type WebState struct {
	AppID   string    `json:"appid"`
	Next    string    `json:"next"` // where to send the browser afterwards
	Expires time.Time `json:"expires"`
}

func webStateName(state string) string { return shortName("webstate", state) }

func webStateLockName(state string) string { return Prefix + "/webstates/" + webStateName(state) }

// SaveWebState remembers a web login started with state.
func (s *Store) SaveWebState(ctx context.Context, state string, ws *WebState, now time.Time) error {
	return s.saveShort(ctx, webStateName(state), ws, now)
}

// TakeWebState returns the web login started with state and forgets it:
// a state is good once, on whichever node the browser comes back to. It
// returns ErrNotFound for a state never issued, already taken, or expired
// at now. A state saved by a node of the older layout is found too.
func (s *Store) TakeWebState(ctx context.Context, state string, life time.Duration, now time.Time) (*WebState, error) {
	lock := webStateLockName(state)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the web login state: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()

	var ws WebState
	key, err := s.loadShort(ctx, webStateName(state), &ws, life, now)
	if errors.Is(err, ErrNotFound) {
		key = legacyShortKey(legacyWebStateName(state))
		err = s.load(ctx, key, &ws)
	}
	if err != nil {
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

// legacyWebStateName is a state's name in the layout before hours.
func legacyWebStateName(state string) string { return shortName("", "webstate\x00"+state) }
