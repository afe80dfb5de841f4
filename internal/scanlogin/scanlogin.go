// Package scanlogin is the website login of teams with a WeChat mini
// program and no Open Platform website app: the website shows the mini
// program's own code, the user scans it with WeChat, the mini program
// (already logged in) asks "log in on your computer?", and the browser
// that showed the code gets a web session of that user.
//
// A ticket stands for one such login. It is the code's scene, lives
// TicketLifetime, is bound to the browser that asked for it (the hash of a
// key in that browser's cookie), and gives one session, once. Its record
// and its mini-program code (fetched from the platform once, when the
// ticket is made) are in storage, so the browser may wait on one node
// while the phone confirms on another. The Caddy glue turns the answers
// into cookies and JSON.
package scanlogin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/identity"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
)

// TicketLifetime is how long a ticket may wait to be confirmed.
const TicketLifetime = 5 * time.Minute

// MaxWait is the longest a browser's wait is held before it is answered
// with the status it already knows, and asks again.
const MaxWait = 25 * time.Second

// lookupLife is how far back a ticket is looked for: an expired one still
// answers "expired" (rather than "unknown") for as long again, and a
// confirmed one still gives its session.
const lookupLife = 2 * TicketLifetime

// BrowserKeyLife is how long a browser keeps its scan cookie after it
// last asked for a ticket: as long as its tickets may be waited for.
const BrowserKeyLife = lookupLife

// holdFor is MaxWait, shorter in tests.
var holdFor = MaxWait

// pollInterval is how often a waiting browser's ticket is read from
// storage: the confirm may come on another node. A confirm on this node
// wakes the wait at once.
var pollInterval = time.Second

// ticketLength: tickets and browser keys are 32 characters of [A-Za-z0-9]
// (190 bits), the most a mini-program code's scene holds.
const ticketLength = platform.MaxScene

// Status is where a ticket is, as the browser's wait answers it.
type Status string

const (
	Pending   Status = "pending"   // the code is shown; nobody has scanned it yet
	Scanned   Status = "scanned"   // the mini program opened it: "confirm on your phone"
	Confirmed Status = "confirmed" // the user confirmed: the browser's wait gets the session
	Canceled  Status = "canceled"  // the user said no
	Expired   Status = "expired"   // nobody confirmed it within TicketLifetime
)

// ParseStatus reads a status a browser says it has seen.
func ParseStatus(s string) (Status, bool) {
	switch st := Status(s); st {
	case Pending, Scanned, Confirmed, Canceled, Expired:
		return st, true
	}
	return "", false
}

// final reports whether nothing comes after st.
func (st Status) final() bool { return st == Canceled || st == Expired }

// Step is what the mini program says of a ticket.
type Step string

const (
	StepScanned Step = "scanned" // the page with the code's scene opened
	StepConfirm Step = "confirm" // the user tapped "log in"
	StepCancel  Step = "cancel"  // the user tapped "cancel"
)

// ParseStep reads the last part of POST <prefix>/scan/<step>.
func ParseStep(s string) (Step, bool) {
	switch st := Step(s); st {
	case StepScanned, StepConfirm, StepCancel:
		return st, true
	}
	return "", false
}

// The reasons a scan login does not go on.
var (
	ErrNoScanApp  = errors.New("no app of this gateway has scan_login: add scan_login to a WeChat mini-program app's block")
	ErrUnknownApp = errors.New(`unknown "appid": it is not an app with scan_login on this gateway`)
	ErrAppGone    = errors.New("the app this scan login was started for is no longer configured; show a new code")

	// ErrTicket matches every refusal of a ticket: unknown, expired,
	// used, canceled, another browser's, another app's, another user's.
	// Each says which in its text.
	ErrTicket = errors.New("invalid scan ticket")
)

// ticketError is one reason a ticket is refused; errors.Is(err, ErrTicket)
// holds for it.
type ticketError string

func (e ticketError) Error() string        { return string(e) }
func (e ticketError) Is(target error) bool { return target == ErrTicket }

const (
	errUnknown   ticketError = "this scan ticket is unknown or long expired; show a new code"
	errBrowser   ticketError = "this scan ticket was not started in this browser; show a new code"
	errUsed      ticketError = "this scan ticket has been used: it logs one browser in, once"
	errConfirmed ticketError = "this scan ticket is already confirmed: nothing is confirmed twice"
	errExpired   ticketError = "this scan ticket has expired (tickets live 5 minutes); show a new code"
	errCanceled  ticketError = "this scan ticket was canceled; show a new code"
	errOtherApp  ticketError = "this scan ticket is for another mini program"
	errOtherUser ticketError = "this scan ticket was scanned by another user"
)

// App is an app with scan_login: a WeChat mini program, and the page of it
// that its code opens.
type App struct {
	platform.App
	Page       string // "" for the home page
	EnvVersion string // "" for release
}

// Codes makes mini-program codes. *platform.Service implements it.
type Codes interface {
	UnlimitedCode(ctx context.Context, app platform.App, req platform.CodeRequest) (*platform.Image, error)
}

// Flow runs scan logins. Fill every field but Now.
type Flow struct {
	// Apps are the apps with scan_login, in configuration order: the
	// first is the default.
	Apps []App
	// Lookup finds any configured app by appid (a ticket outlives a
	// reload).
	Lookup func(appid string) (platform.App, bool)
	Store  *store.Store
	Codes  Codes
	Logins *login.Service
	Now    func() time.Time // nil means time.Now
}

func (f *Flow) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// App picks the app a website's login is for: the one named, else the
// first with scan_login.
func (f *Flow) App(appid string) (App, error) {
	if len(f.Apps) == 0 {
		return App{}, ErrNoScanApp
	}
	if appid == "" {
		return f.Apps[0], nil
	}
	for _, app := range f.Apps {
		if app.AppID == appid {
			return app, nil
		}
	}
	return App{}, ErrUnknownApp
}

// Started is a ticket made for a browser.
type Started struct {
	Ticket  string
	Expires time.Time
}

// Begin makes a ticket of app for the browser holding browserKey, which is
// to land on next afterwards (already checked to be a path of this site):
// it asks the platform for the mini-program code whose scene is the
// ticket, and stores both. A platform failure stores nothing.
func (f *Flow) Begin(ctx context.Context, app App, browserKey, next string) (Started, error) {
	ticket, err := randomToken()
	if err != nil {
		return Started{}, err
	}
	img, err := f.Codes.UnlimitedCode(ctx, app.App, platform.CodeRequest{Scene: ticket, Page: app.Page, EnvVersion: app.EnvVersion})
	if err != nil {
		return Started{}, err
	}
	now := f.now()
	t := &store.ScanTicket{AppID: app.AppID, Browser: browserHash(browserKey), Next: next, Status: string(Pending),
		Expires: now.Add(TicketLifetime)}
	if err := f.Store.SaveScanTicket(ctx, ticket, t, &store.ScanImage{ContentType: img.ContentType, Data: img.Data}, now); err != nil {
		return Started{}, err
	}
	return Started{Ticket: ticket, Expires: t.Expires}, nil
}

// Image is a ticket's mini-program code, while the ticket may still be
// scanned.
func (f *Flow) Image(ctx context.Context, ticket string) (*store.ScanImage, error) {
	now := f.now()
	if _, err := f.load(ctx, ticket, now); err != nil {
		return nil, err
	}
	img, err := f.Store.LoadScanImage(ctx, ticket, lookupLife, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknown
	}
	return img, err
}

// TicketApp is the app of a ticket that may still be scanned (for the
// sandbox's phone, which logs in to it).
func (f *Flow) TicketApp(ctx context.Context, ticket string) (platform.App, error) {
	t, err := f.load(ctx, ticket, f.now())
	if err != nil {
		return platform.App{}, err
	}
	app, ok := f.Lookup(t.AppID)
	if !ok {
		return platform.App{}, ErrAppGone
	}
	return app, nil
}

// load reads a ticket that may still be scanned or confirmed.
func (f *Flow) load(ctx context.Context, ticket string, now time.Time) (*store.ScanTicket, error) {
	if !ValidToken(ticket) {
		return nil, errUnknown
	}
	t, err := f.Store.LoadScanTicket(ctx, ticket, lookupLife, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknown
	}
	if err != nil {
		return nil, err
	}
	return t, usable(t, now)
}

// usable is why a ticket can go no further, or nil.
func usable(t *store.ScanTicket, now time.Time) error {
	switch statusOf(t, now) {
	case Confirmed:
		if t.Used {
			return errUsed
		}
		return errConfirmed
	case Canceled:
		return errCanceled
	case Expired:
		return errExpired
	}
	return nil
}

// statusOf is the ticket's status at now: one that nobody confirmed or
// canceled within its life has expired.
func statusOf(t *store.ScanTicket, now time.Time) Status {
	st := Status(t.Status)
	if (st == Pending || st == Scanned) && !now.Before(t.Expires) {
		return Expired
	}
	return st
}

// Step is the mini program's word on a ticket, for the user who holds the
// access token (who: its identity): the first user to scan or confirm a
// ticket is the only one who may go on with it, a ticket is confirmed
// once, and only a ticket of the token's own app. Scanned again is fine;
// confirmed or canceled is final.
func (f *Flow) Step(ctx context.Context, ticket string, step Step, who identity.Identity) error {
	now := f.now()
	if _, err := f.load(ctx, ticket, now); err != nil {
		return err // read without the lock first: most refusals need none
	}
	_, err := f.Store.UpdateScanTicket(ctx, ticket, lookupLife, now, func(t *store.ScanTicket) error {
		switch {
		case t.AppID != who.AppID:
			return errOtherApp
		case usable(t, now) != nil:
			return usable(t, now)
		case t.OpenID != "" && t.OpenID != who.OpenID:
			return errOtherUser
		}
		t.OpenID, t.UnionID = who.OpenID, who.UnionID
		switch step {
		case StepScanned:
			t.Status = string(Scanned)
		case StepConfirm:
			t.Status = string(Confirmed)
		case StepCancel:
			t.Status = string(Canceled)
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return errUnknown
	}
	if err == nil {
		wake(ticket)
	}
	return err
}

// NewBrowserKey is a fresh key for a browser's scan cookie.
func NewBrowserKey() (string, error) { return randomToken() }

// ValidToken reports whether s looks like a ticket or a browser key.
func ValidToken(s string) bool {
	if len(s) != ticketLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func browserHash(key string) string {
	sum := sha256.Sum256([]byte("wxauth-scan-browser|" + key))
	return hex.EncodeToString(sum[:])
}

func sameBrowser(t *store.ScanTicket, browserKey string) bool {
	return ValidToken(browserKey) && subtle.ConstantTimeCompare([]byte(t.Browser), []byte(browserHash(browserKey))) == 1
}

// randomToken is 32 random characters of [A-Za-z0-9].
func randomToken() (string, error) { return token.RandomAlnum(ticketLength) }
