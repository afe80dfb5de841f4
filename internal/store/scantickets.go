package store

import (
	"context"
	"fmt"
	"time"
)

// ScanTicket is a scan login in progress: a website's browser waiting for
// the mini program to confirm. It is a short-lived record, like a code,
// kept in the hour it was made; its mini-program code, fetched once, is a
// record of its own beside it (ScanImage), so that the browser's polls
// read a few hundred bytes, not the image.
type ScanTicket struct {
	AppID string `json:"appid"`
	// Browser is the SHA-256 (hex) of the key in the cookie of the browser
	// that asked for the ticket: only that browser may wait for it.
	Browser string `json:"browser"`
	Next    string `json:"next"` // where to send the browser afterwards
	// Status is "pending", "scanned", "confirmed" or "canceled" (the
	// ticket's "expired" is its Expires passing).
	Status string `json:"status"`
	// The user who scanned it: the first one to say so is the only one
	// who may confirm or cancel it.
	OpenID  string `json:"openid,omitempty"`
	UnionID string `json:"unionid,omitempty"`
	// Used: the browser got its session. A ticket is good for one.
	Used    bool      `json:"used,omitempty"`
	Expires time.Time `json:"expires"`
}

// ScanImage is a ticket's mini-program code, as the platform made it.
type ScanImage struct {
	ContentType string `json:"content_type"`
	Data        []byte `json:"data"` // base64 in the record
}

func scanTicketName(ticket string) string { return shortName("scanticket", ticket) }
func scanImageName(ticket string) string  { return shortName("scanimage", ticket) }

func scanTicketLockName(ticket string) string {
	return Prefix + "/scantickets/" + scanTicketName(ticket)
}

// SaveScanTicket stores a new ticket and its image at once.
func (s *Store) SaveScanTicket(ctx context.Context, ticket string, t *ScanTicket, img *ScanImage, now time.Time) error {
	return concurrently(
		func() error { return s.saveShort(ctx, scanTicketName(ticket), t, now) },
		func() error { return s.saveShort(ctx, scanImageName(ticket), img, now) })
}

// LoadScanTicket returns the ticket made within life before now, whatever
// its status, or ErrNotFound. It takes no lock: it is what a waiting
// browser polls.
func (s *Store) LoadScanTicket(ctx context.Context, ticket string, life time.Duration, now time.Time) (*ScanTicket, error) {
	var t ScanTicket
	if _, err := s.loadShort(ctx, scanTicketName(ticket), &t, life, now); err != nil {
		return nil, err
	}
	return &t, nil
}

// LoadScanImage returns the mini-program code of a ticket made within
// life before now, or ErrNotFound.
func (s *Store) LoadScanImage(ctx context.Context, ticket string, life time.Duration, now time.Time) (*ScanImage, error) {
	var img ScanImage
	if _, err := s.loadShort(ctx, scanImageName(ticket), &img, life, now); err != nil {
		return nil, err
	}
	return &img, nil
}

// UpdateScanTicket changes a ticket made within life before now, under
// the ticket's storage lock: change sees the ticket as stored and changes
// it, and what it leaves is saved where the ticket is; an error from
// change saves nothing and is returned. Every change of status goes
// through here, so that two nodes never both move one ticket on (a
// ticket is confirmed once, and gives one session). It returns the ticket
// as saved, or ErrNotFound.
func (s *Store) UpdateScanTicket(ctx context.Context, ticket string, life time.Duration, now time.Time, change func(*ScanTicket) error) (*ScanTicket, error) {
	lock := scanTicketLockName(ticket)
	if err := s.storage.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking the scan ticket: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()

	var t ScanTicket
	key, err := s.loadShort(ctx, scanTicketName(ticket), &t, life, now)
	if err != nil {
		return nil, err
	}
	if err := change(&t); err != nil {
		return nil, err
	}
	if err := s.save(ctx, key, &t); err != nil {
		return nil, err
	}
	return &t, nil
}
