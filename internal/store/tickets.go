package store

import (
	"context"
	"errors"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// HandoffTicket is a mini-program user's login handed to a web page the
// mini program opens in a <web-view>: a single-use ticket stands for it.
// It is a short-lived record, like a code; the ticket itself is never
// stored, only its hash.
type HandoffTicket struct {
	AppID   string    `json:"appid"`
	OpenID  string    `json:"openid"`
	Expires time.Time `json:"expires"`
}

func handoffName(ticket string) string { return shortName("handoff", ticket) }

// SaveHandoff remembers the handoff that ticket stands for.
func (s *Store) SaveHandoff(ctx context.Context, ticket string, h *HandoffTicket, now time.Time) error {
	if !valid.ID(h.AppID) || !valid.ID(h.OpenID) {
		return errors.New("refusing to store a handoff ticket with unsafe ids")
	}
	return s.saveShort(ctx, handoffName(ticket), h, now)
}

// TakeHandoff returns the handoff ticket stands for and forgets it: a
// ticket is good once, on any node. It returns ErrNotFound for a ticket
// never issued, already taken, or expired at now (life is the longest a
// ticket lives).
func (s *Store) TakeHandoff(ctx context.Context, ticket string, life time.Duration, now time.Time) (*HandoffTicket, error) {
	var h HandoffTicket
	if err := s.takeShort(ctx, handoffName(ticket), "", &h, life, now); err != nil {
		return nil, err
	}
	if !now.Before(h.Expires) {
		return nil, ErrNotFound
	}
	return &h, nil
}
