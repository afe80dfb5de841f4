package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// CodeRecord remembers which user a login code was exchanged for, so a
// retried or double-tapped code logs the same user in again without asking
// the platform, which would answer 40163 for a second exchange.
type CodeRecord struct {
	AppID   string    `json:"appid"`
	OpenID  string    `json:"openid"`
	UnionID string    `json:"unionid,omitempty"`
	Expires time.Time `json:"expires"`
}

func codeKey(appid, code string) string {
	sum := sha256.Sum256([]byte(appid + "\x00" + code))
	return codesDir + "/" + hex.EncodeToString(sum[:]) + ".json"
}

// LoadCode returns the record of an exchanged login code, or ErrNotFound
// (also when it has expired at now).
func (s *Store) LoadCode(ctx context.Context, appid, code string, now time.Time) (*CodeRecord, error) {
	return s.loadCodeRecord(ctx, codeKey(appid, code), appid, now)
}

func (s *Store) loadCodeRecord(ctx context.Context, key, appid string, now time.Time) (*CodeRecord, error) {
	var rec CodeRecord
	if err := s.load(ctx, key, &rec); err != nil {
		return nil, err
	}
	if !now.Before(rec.Expires) || rec.AppID != appid {
		return nil, ErrNotFound
	}
	return &rec, nil
}

// SaveCode remembers that code was exchanged for rec's user.
func (s *Store) SaveCode(ctx context.Context, code string, rec *CodeRecord) error {
	return s.save(ctx, codeKey(rec.AppID, code), rec)
}

// Phone codes (from the getPhoneNumber button) are remembered like login
// codes, in the same folder so the sweep removes them too, under keys of
// their own: a phone code and a login code never name one record.
func phoneCodeKey(appid, code string) string { return codeKey(appid, "phone\x00"+code) }

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
	return s.loadCodeRecord(ctx, phoneCodeKey(appid, code), appid, now)
}

// SavePhoneCode remembers that a phone code was exchanged for rec's user.
func (s *Store) SavePhoneCode(ctx context.Context, code string, rec *CodeRecord) error {
	return s.save(ctx, phoneCodeKey(rec.AppID, code), rec)
}
