package profile

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// PhoneCodeLifetime is how long a getPhoneNumber code lives, and so how
// long a retried post of one is answered from what we stored.
const PhoneCodeLifetime = 5 * time.Minute

// Phone trades a getPhoneNumber code for the number of app's user openid
// and stores it with the user.
//
// getuserphonenumber is billed per successful call, and clients retry and
// double-tap, so a code is exchanged at most once across every node that
// shares the storage: under the code's storage lock, a code already
// exchanged is answered from the stored number.
func (s *Service) Phone(ctx context.Context, app platform.App, openid, code string) (*store.User, error) {
	// Posts of one code to this node queue here, so only one at a time
	// polls the storage lock (which file storage checks once a second).
	mu := &s.codeLocks[maphash.String(codeLockSeed, app.AppID+"\x00"+code)%uint64(len(s.codeLocks))]
	mu.Lock()
	defer mu.Unlock()

	storage := s.Users.Storage()
	lock := store.PhoneCodeLockName(app.AppID, code)
	if err := storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the phone code: %w", err)
	}
	// Unlock even when the client has gone: the lock must not outlive us.
	defer func() { _ = storage.Unlock(context.WithoutCancel(ctx), lock) }()

	now := s.now()
	rec, err := s.Users.LoadPhoneCode(ctx, app.AppID, code, now)
	switch {
	case err == nil:
		return s.alreadyExchanged(ctx, app, openid, rec)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}

	phone, err := callPlatform(s, app, openid, "getuserphonenumber", func() (*platform.Phone, error) {
		return s.Phones.PhoneNumber(ctx, app, code)
	})
	if err != nil {
		return nil, err
	}
	user, err := s.Users.UpdateUser(ctx, app.AppID, openid, func(u *store.User) error {
		u.Phone = &store.PhoneNumber{
			Number:      phone.PhoneNumber,
			PureNumber:  phone.PurePhoneNumber,
			CountryCode: phone.CountryCode,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("saving the user's phone number: %w", err)
	}
	// Best effort, like login codes: without it, a retry of this code
	// would be refused by the platform (40029) rather than answered again.
	_ = s.Users.SavePhoneCode(ctx, code, &store.CodeRecord{AppID: app.AppID, OpenID: openid, Expires: now.Add(PhoneCodeLifetime)}, now)
	return user, nil
}

// alreadyExchanged answers a phone code that was exchanged before: with
// the stored number for the user it was exchanged for, and as a used code
// for anyone else.
func (s *Service) alreadyExchanged(ctx context.Context, app platform.App, openid string, rec *store.CodeRecord) (*store.User, error) {
	if rec.OpenID == openid {
		user, err := s.Users.LoadUser(ctx, app.AppID, openid)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		if user != nil && user.Phone != nil {
			return user, nil
		}
	}
	return nil, &platform.Error{Code: platform.InvalidCode, API: "getuserphonenumber",
		Message: "this getPhoneNumber code was already used; ask the user to tap the phone-number button again and post the new code"}
}
