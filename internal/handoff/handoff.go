// Package handoff hands a mini-program user's login to a web page the mini
// program opens in a <web-view>. The page cannot call the mini program's
// APIs, and an access token is too long and too dangerous for a URL; so
// the mini program asks for a ticket (single use, 60 s, good on any node),
// puts it in the page's URL, and the page's first request trades it for a
// web cookie session of the same user.
package handoff

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// TicketLifetime is how long a ticket is good: long enough for the
// web-view to open, short enough that a ticket in a log is worthless.
const TicketLifetime = 60 * time.Second

// ErrUnknownTicket means the ticket was never issued, is used already, or
// has expired (or its app is no longer configured).
var ErrUnknownTicket = errors.New("the handoff ticket is unknown, used or expired (a ticket lives 60 s and works once); open the page from the mini program again")

// ticketBytes is the ticket's randomness: 256 bits, 43 characters.
const ticketBytes = 32

// Service issues and redeems tickets. Fill every field but Now.
type Service struct {
	Store  *store.Store
	Logins *login.Service
	// Apps finds a configured app by appid.
	Apps func(appid string) (platform.App, bool)
	Now  func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Issue makes a ticket for the user whose token asserted id, and says
// when it expires.
func (s *Service) Issue(ctx context.Context, id identity.Identity) (ticket string, expires time.Time, err error) {
	var b [ticketBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", time.Time{}, fmt.Errorf("reading random bytes: %w", err)
	}
	ticket = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.now()
	expires = now.Add(TicketLifetime)
	h := &store.HandoffTicket{AppID: id.AppID, OpenID: id.OpenID, Expires: expires}
	if err := s.Store.SaveHandoff(ctx, ticket, h, now); err != nil {
		return "", time.Time{}, fmt.Errorf("saving the handoff ticket: %w", err)
	}
	return ticket, expires, nil
}

// Redeem trades a ticket for a new session of its user in its app (the
// same openid, unionid and profile, and the app's source), for the
// browser's cookies. A ticket is good once.
func (s *Service) Redeem(ctx context.Context, ticket string) (*login.Result, error) {
	if len(ticket) != base64.RawURLEncoding.EncodedLen(ticketBytes) {
		return nil, ErrUnknownTicket
	}
	h, err := s.Store.TakeHandoff(ctx, ticket, TicketLifetime, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrUnknownTicket
	}
	if err != nil {
		return nil, fmt.Errorf("taking the handoff ticket: %w", err)
	}
	app, ok := s.Apps(h.AppID)
	if !ok {
		return nil, ErrUnknownTicket
	}
	user, err := s.Store.LoadUser(ctx, h.AppID, h.OpenID)
	if errors.Is(err, store.ErrNotFound) {
		// Its record is not visible on this node (yet): the identity is
		// enough to start the session.
		user, err = &store.User{AppID: h.AppID, OpenID: h.OpenID}, nil
	}
	if err != nil {
		return nil, err
	}
	return s.Logins.StartSession(ctx, app, user)
}
