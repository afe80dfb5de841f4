package store

import (
	"context"
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

// SaveWebState remembers a web login started with state.
func (s *Store) SaveWebState(ctx context.Context, state string, ws *WebState, now time.Time) error {
	return s.saveShort(ctx, webStateName(state), ws, now)
}

// TakeWebState returns the web login started with state and forgets it:
// a state is good once, on whichever node the browser comes back to. It
// returns ErrNotFound for a state never issued, already taken, or expired
// at now. A state saved by a node of the older layout is found too.
func (s *Store) TakeWebState(ctx context.Context, state string, life time.Duration, now time.Time) (*WebState, error) {
	var ws WebState
	legacy := legacyShortKey(legacyWebStateName(state))
	if err := s.takeShort(ctx, webStateName(state), legacy, &ws, life, now); err != nil {
		return nil, err
	}
	if !now.Before(ws.Expires) {
		return nil, ErrNotFound
	}
	return &ws, nil
}

// legacyWebStateName is a state's name in the layout before hours.
func legacyWebStateName(state string) string { return shortName("", "webstate\x00"+state) }
