package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// CodeRecord remembers which user a login code was exchanged for, so a
// retried or double-tapped code logs the same user in again without asking
// the platform, which would answer 40163 for a second exchange.
type CodeRecord struct {
	AppID   string `json:"appid"`
	OpenID  string `json:"openid"`
	UnionID string `json:"unionid,omitempty"`
	// IDType is which of Alipay's ids OpenID is (platform.Session.IDType).
	IDType  string    `json:"id_type,omitempty"`
	Expires time.Time `json:"expires"`
}

// CodeLifetime is how long a login or phone code is remembered: the
// platform accepts a code for 5 minutes.
const CodeLifetime = 5 * time.Minute

// Short-lived records (codes, web login states) are kept in a folder of the
// hour they were made in: a lookup tries that hour and, near its start, the
// hour before; the sweep removes an hour whole once all in it has expired.

// maxShortLifetime bounds what lives in the hours' folders: a record made
// in an hour is gone this long after the hour ends.
const maxShortLifetime = 15 * time.Minute

func (s *Store) saveShort(ctx context.Context, name string, v any, now time.Time) error {
	return s.save(ctx, shortKey(now, name), v)
}

// loadShort finds a short-lived record made within life before now, and
// returns its key.
func (s *Store) loadShort(ctx context.Context, name string, v any, life time.Duration, now time.Time) (string, error) {
	key := shortKey(now, name)
	err := s.load(ctx, key, v)
	if earlier := shortKey(now.Add(-life), name); errors.Is(err, ErrNotFound) && earlier != key {
		key, err = earlier, s.load(ctx, earlier, v)
	}
	return key, err
}

// takeShort loads the short-lived record name (made within life before
// now; or, when legacy is not "", the record at that key of the layout
// before hours) into v and deletes it, under a storage lock so that two
// nodes cannot both take it: a record taken is good once. It returns
// ErrNotFound when there is none.
func (s *Store) takeShort(ctx context.Context, name, legacy string, v any, life time.Duration, now time.Time) error {
	lock := Prefix + "/take/" + name
	if err := s.storage.Lock(ctx, lock); err != nil {
		return fmt.Errorf("locking a single-use record: %w", err)
	}
	defer func() { _ = s.storage.Unlock(context.WithoutCancel(ctx), lock) }()
	key, err := s.loadShort(ctx, name, v, life, now)
	if errors.Is(err, ErrNotFound) && legacy != "" {
		key, err = legacy, s.load(ctx, legacy, v)
	}
	if err != nil {
		return err
	}
	return s.remove(ctx, key)
}

func codeName(kind, appid, code string) string { return shortName(kind, appid, code) }

// LoadCode returns the record of an exchanged login code, or ErrNotFound
// (also when it has expired at now).
func (s *Store) LoadCode(ctx context.Context, appid, code string, now time.Time) (*CodeRecord, error) {
	return s.loadCodeRecord(ctx, codeName("login", appid, code), appid, now)
}

func (s *Store) loadCodeRecord(ctx context.Context, name, appid string, now time.Time) (*CodeRecord, error) {
	var rec CodeRecord
	if _, err := s.loadShort(ctx, name, &rec, CodeLifetime, now); err != nil {
		return nil, err
	}
	if !now.Before(rec.Expires) || rec.AppID != appid {
		return nil, ErrNotFound
	}
	return &rec, nil
}

// SaveCode remembers that code was exchanged for rec's user.
func (s *Store) SaveCode(ctx context.Context, code string, rec *CodeRecord, now time.Time) error {
	return s.saveShort(ctx, codeName("login", rec.AppID, code), rec, now)
}

// CodeClaimLockName is the storage lock held while a login code is
// exchanged: the node that takes it asks the platform, the others wait
// and read its outcome, so a code is exchanged once across every node.
func CodeClaimLockName(appid, code string) string {
	return Prefix + "/claims/" + codeName("login", appid, code)
}

// PhoneCodeLockName is the storage lock held while a phone code is
// exchanged: getuserphonenumber is billed per call, so one code is
// exchanged once across every node.
func PhoneCodeLockName(appid, code string) string {
	sum := sha256.Sum256([]byte(appid + "\x00phone\x00" + code))
	return Prefix + "/phonecodes/" + hex.EncodeToString(sum[:])
}

// LoadPhoneCode returns the record of an exchanged phone code, or
// ErrNotFound (also when it has expired at now).
func (s *Store) LoadPhoneCode(ctx context.Context, appid, code string, now time.Time) (*CodeRecord, error) {
	return s.loadCodeRecord(ctx, codeName("phone", appid, code), appid, now)
}

// SavePhoneCode remembers that a phone code was exchanged for rec's user.
func (s *Store) SavePhoneCode(ctx context.Context, code string, rec *CodeRecord, now time.Time) error {
	return s.saveShort(ctx, codeName("phone", rec.AppID, code), rec, now)
}
