// Package login turns a platform login code into the gateway's own login
// state: it exchanges the code once, keeps the session_key on the server and
// issues an access token and a refresh token.
package login

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// CodeLifetime is how long the platform accepts a login code, and so how
// long a repeated post of one code is answered from what we already know.
const CodeLifetime = store.CodeLifetime

// Exchanger trades a login code for the user's identity (code2Session).
type Exchanger interface {
	Code2Session(ctx context.Context, app platform.App, code string) (*platform.Session, error)
}

// Service logs users in. Its zero value is not usable; fill every field.
type Service struct {
	Exchanger  Exchanger
	Store      *store.Store
	Codec      *token.Codec
	AccessTTL  time.Duration
	RefreshTTL time.Duration
	// RefreshGrace is how long a spent refresh token, presented again,
	// is a retry answered with its successor rather than theft. 0 turns
	// retries off.
	RefreshGrace time.Duration
	Now          func() time.Time // nil means time.Now

	// Apps looks up a configured app; refresh refuses sessions of apps
	// that are no longer configured.
	Apps func(appid string) (platform.App, bool)

	// Flights remembers codes being and recently exchanged. It may be
	// shared across config reloads; nil gives the Service its own.
	Flights *CodeFlights

	// Revocations learns of sessions this node revokes at once; the
	// record in storage tells the other nodes.
	Revocations *store.Revocations

	initOnce sync.Once

	// sessionLocks queue this node's changes to one session (parallel
	// refreshes from tabs) before the storage lock, so that they wait
	// their turn here instead of each polling the storage lock (which
	// file storage checks once a second). Striped: no per-session memory.
	sessionLocks [64]sync.Mutex
}

// sessionLockSeed spreads sessions over Service.sessionLocks.
var sessionLockSeed = maphash.MakeSeed()

// Result is a new login session, ready to be answered to the client.
type Result struct {
	AccessToken   string
	AccessExpires time.Time
	RefreshToken  string
	Session       *store.Session
	User          *store.User
	// Retried: a refresh retried within the grace, answered with the
	// refresh token the first attempt was given.
	Retried bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Login exchanges code for app's user and starts a new session for them.
//
// A code is exchanged with the platform at most once per node while it
// lives, and the outcome is written to storage so other nodes reuse it too:
// clients retry and double-tap, and the platform answers a second exchange
// with 40163. Each post still gets a session of its own, because handing one
// refresh token to two clients would make the second one's refresh look
// like theft.
func (s *Service) Login(ctx context.Context, app platform.App, code string) (*Result, error) {
	return s.LoginWith(ctx, app, code, nil)
}

// Prepare changes a user after their code was exchanged and before their
// session starts, such as setting the profile from the legacy encrypted
// data sent along with the code. It returns the user to start the session
// for; an error fails the login and starts no session.
type Prepare func(ctx context.Context, user *store.User) (*store.User, error)

// LoginWith is Login with a Prepare step; nil means none.
func (s *Service) LoginWith(ctx context.Context, app platform.App, code string, prepare Prepare) (*Result, error) {
	x, err := s.exchangeOnce(ctx, app, code)
	if err != nil {
		return nil, err
	}
	user := x.user
	if user == nil {
		// Exchanged on another node: its code record says whose it was.
		user, err = s.Store.LoadUser(ctx, app.AppID, x.code.OpenID)
		if errors.Is(err, store.ErrNotFound) {
			// Its user record is not visible here (yet); the code record
			// alone is enough to log in.
			user, err = &store.User{AppID: app.AppID, OpenID: x.code.OpenID, UnionID: x.code.UnionID, IDType: x.code.IDType}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	if prepare != nil {
		if user, err = prepare(ctx, user); err != nil {
			return nil, err
		}
	}
	return s.StartSession(ctx, app, user)
}

func (s *Service) flights() *CodeFlights {
	s.initOnce.Do(func() {
		if s.Flights == nil {
			s.Flights = new(CodeFlights)
		}
	})
	return s.Flights
}

// exchanged is the outcome of a code's exchange: whose the code was, and
// the user record as the exchange left it (nil when another node
// exchanged the code).
type exchanged struct {
	code *store.CodeRecord
	user *store.User
}

func (s *Service) exchangeOnce(ctx context.Context, app platform.App, code string) (exchanged, error) {
	now := s.now()
	return s.flights().do(ctx, app.AppID, code, now, func(ctx context.Context) (exchanged, error) {
		return s.exchange(ctx, app, code, now)
	})
}

// exchange asks the platform whose code is, once across every node: the
// node that takes the code's claim in storage asks; a node that finds the
// claim taken waits for it and then reads the first one's outcome.
func (s *Service) exchange(ctx context.Context, app platform.App, code string, now time.Time) (exchanged, error) {
	storage := s.Store.Storage()
	claim := store.CodeClaimLockName(app.AppID, code)
	if err := storage.Lock(ctx, claim); err != nil {
		return exchanged{}, fmt.Errorf("claiming the login code: %w", err)
	}
	defer func() { _ = storage.Unlock(context.WithoutCancel(ctx), claim) }()

	rec, err := s.Store.LoadCode(ctx, app.AppID, code, now)
	if err == nil {
		return exchanged{code: rec}, nil // exchanged on another node
	}
	if !errors.Is(err, store.ErrNotFound) {
		return exchanged{}, err
	}
	ps, err := s.Exchanger.Code2Session(ctx, app, code)
	if err != nil {
		if pe := platform.AsError(err); pe != nil && pe.Errcode == 40163 {
			// "Code been used": a node that does not claim codes (an older
			// version, during an upgrade) may have exchanged it an instant
			// ago and written down whose it was.
			if rec, lerr := s.Store.LoadCode(ctx, app.AppID, code, now); lerr == nil {
				return exchanged{code: rec}, nil
			}
		}
		return exchanged{}, err
	}
	rec = &store.CodeRecord{AppID: app.AppID, OpenID: ps.OpenID, UnionID: ps.UnionID, IDType: ps.IDType, Expires: now.Add(CodeLifetime)}
	// The code record and the user do not depend on each other: both are
	// written at once. The code record is best effort: without it, only
	// another node's retry of this code would fail (40163 → invalid_code);
	// this node remembers the code in memory anyway.
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		_ = s.Store.SaveCode(ctx, code, rec, now)
	}()
	user, err := s.Store.UpdateUser(ctx, app.AppID, ps.OpenID, func(u *store.User) error {
		if ps.UnionID != "" {
			u.UnionID = ps.UnionID
		}
		u.IDType = ps.IDType
		// The platform keeps only the newest session_key per user.
		u.SessionKey = ps.SessionKey
		u.SessionKeyUpdated = now
		u.NoteLogin(now, s.RefreshTTL)
		return nil
	})
	<-saved
	if err != nil {
		return exchanged{}, fmt.Errorf("saving the user's session key: %w", err)
	}
	return exchanged{code: rec, user: user}, nil
}

// StartSession stores a new session for user and issues its tokens. Login
// calls it after the code exchange; the web login calls it after its own.
func (s *Service) StartSession(ctx context.Context, app platform.App, user *store.User) (*Result, error) {
	now := s.now()
	id, err := store.NewSessionID(app.AppID, user.OpenID)
	if err != nil {
		return nil, err
	}
	refresh, refreshHash, err := newRefreshToken(id)
	if err != nil {
		return nil, err
	}
	sess := &store.Session{
		ID:             id,
		AppID:          app.AppID,
		OpenID:         user.OpenID,
		Source:         app.Kind.Source(),
		Created:        now,
		RefreshHash:    refreshHash,
		RefreshExpires: now.Add(s.RefreshTTL),
	}
	res, err := s.result(sess, user, refresh, now)
	if err != nil {
		return nil, err
	}
	if err := s.Store.SaveSession(ctx, sess); err != nil {
		return nil, fmt.Errorf("saving the new session: %w", err)
	}
	return res, nil
}

// result issues an access token for sess, records its expiry in sess (the
// caller saves it) and packs the answer.
func (s *Service) result(sess *store.Session, user *store.User, refresh string, now time.Time) (*Result, error) {
	access, expires, err := s.Codec.Issue(IdentityOf(sess, user), now, s.AccessTTL)
	if err != nil {
		return nil, fmt.Errorf("issuing the access token: %w", err)
	}
	sess.IssuedAccess(expires)
	return &Result{AccessToken: access, AccessExpires: expires, RefreshToken: refresh, Session: sess, User: user}, nil
}

// Reissue issues a new access token for the session of the token that
// asserted current, carrying what is now known of user (a new profile or
// phone number). The new token expires when the old one does: a change of
// profile must not become a way to extend a session without its refresh
// token.
func (s *Service) Reissue(current identity.Identity, user *store.User, expires time.Time) (string, time.Time, error) {
	sess := &store.Session{ID: current.SessionID, AppID: current.AppID, OpenID: current.OpenID, Source: current.Source}
	now := s.now()
	// A token about to expire still gets a usable one: at least a second.
	ttl := max(expires.Sub(now), time.Second)
	access, exp, err := s.Codec.Issue(IdentityOf(sess, user), now, ttl)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issuing the access token: %w", err)
	}
	return access, exp, nil
}

// IdentityOf is what an access token for sess asserts.
func IdentityOf(sess *store.Session, user *store.User) identity.Identity {
	id := identity.Identity{
		SessionID: sess.ID,
		AppID:     sess.AppID,
		OpenID:    sess.OpenID,
		UnionID:   user.UnionID,
		Source:    sess.Source,
	}
	if user.Phone != nil {
		id.Phone = user.Phone.Number
	}
	if user.Profile != nil {
		id.Nickname = user.Profile.Nickname
		id.AvatarURL = user.Profile.AvatarURL
	}
	return id
}
