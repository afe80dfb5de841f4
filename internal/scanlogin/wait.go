package scanlogin

import (
	"context"
	"errors"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
)

// Waited is what a browser's wait ends with: the ticket's status, and for
// a confirmed one the session (started for this browser, once), its app
// and where the browser goes next.
type Waited struct {
	Status  Status
	App     platform.App
	Next    string
	Session *login.Result
}

// Wait answers the browser holding browserKey with its ticket's status as
// soon as it is not seen any more (or is final), or with seen once MaxWait
// has passed, stop is closed (the server is shutting down) or ctx ends
// (the browser went away: then the error is ctx's). A confirmed ticket is
// answered with a new session of the user who confirmed it, once: a
// second wait is refused as used.
//
// The ticket is read from storage every pollInterval, without a lock; a
// step taken on this node wakes the wait at once.
func (f *Flow) Wait(ctx context.Context, ticket, browserKey string, seen Status, stop <-chan struct{}) (Waited, error) {
	if !ValidToken(ticket) {
		return Waited{}, errUnknown
	}
	deadline := time.NewTimer(holdFor)
	defer deadline.Stop()
	for {
		changed, release := watch(ticket)
		now := f.now()
		t, err := f.Store.LoadScanTicket(ctx, ticket, lookupLife, now)
		if err != nil {
			release()
			if errors.Is(err, store.ErrNotFound) {
				return Waited{}, errUnknown
			}
			return Waited{}, err
		}
		if !sameBrowser(t, browserKey) {
			release()
			return Waited{}, errBrowser
		}
		st := statusOf(t, now)
		switch {
		case t.Used:
			release()
			return Waited{}, errUsed
		case st == Confirmed:
			release()
			return f.deliver(ctx, ticket, browserKey)
		case st != seen || st.final():
			release()
			return Waited{Status: st}, nil
		}
		poll := time.NewTimer(min(pollInterval, max(t.Expires.Sub(now), 0)))
		held := false // held as long as it may be: answer what the browser has seen
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline.C:
			held = true
		case <-stop:
			held = true
		case <-ctx.Done():
			err = ctx.Err()
		}
		poll.Stop()
		release()
		switch {
		case err != nil:
			return Waited{}, err
		case held:
			return Waited{Status: seen}, nil
		}
	}
}

// deliver starts the session of a confirmed ticket for its browser and
// marks the ticket used, under the ticket's lock: one session per ticket,
// whichever node each wait is on.
func (f *Flow) deliver(ctx context.Context, ticket, browserKey string) (Waited, error) {
	var w Waited
	_, err := f.Store.UpdateScanTicket(ctx, ticket, lookupLife, f.now(), func(t *store.ScanTicket) error {
		switch {
		case !sameBrowser(t, browserKey):
			return errBrowser
		case t.Used:
			return errUsed
		case Status(t.Status) != Confirmed:
			return errUnknown // statuses never go back: not reached
		}
		app, ok := f.Lookup(t.AppID)
		if !ok {
			return ErrAppGone
		}
		user, err := f.Store.LoadUser(ctx, t.AppID, t.OpenID)
		if errors.Is(err, store.ErrNotFound) {
			// Its record is not visible here (yet): the ticket says who.
			user, err = &store.User{AppID: t.AppID, OpenID: t.OpenID, UnionID: t.UnionID}, nil
		}
		if err != nil {
			return err
		}
		res, err := f.Logins.StartSession(ctx, app, user)
		if err != nil {
			return err
		}
		t.Used = true
		w = Waited{Status: Confirmed, App: app, Next: t.Next, Session: res}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return Waited{}, errUnknown
	}
	if err != nil {
		return Waited{}, err
	}
	return w, nil
}
