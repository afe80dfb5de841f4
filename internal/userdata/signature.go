package userdata

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

var (
	errSigFormat   = fmt.Errorf("%w: signature is not %d hex digits", ErrSignature, 2*sha1.Size)
	errSigMismatch = fmt.Errorf("%w: signature does not match rawData: it did not come from WeChat, "+
		"or it was signed with another (newer) session_key; the client should log in again if this repeats",
		ErrSignature)
)

// VerifySignature checks that signature is hex(sha1(rawData + sessionKey)),
// in either case, comparing in constant time.
//
// The session key must be a well-formed 16-byte key (ErrMalformed
// otherwise): with an empty or guessable key anyone could forge the
// signature. The hash covers the key's text exactly as code2Session gave
// it, so the caller must pass the stored string, not a re-encoding.
func VerifySignature(rawData, signature, sessionKey string) error {
	var key [keyLen]byte
	if err := decodeKey(key[:], sessionKey, "session_key"); err != nil {
		return err
	}
	var got [sha1.Size]byte
	if len(signature) != hex.EncodedLen(sha1.Size) {
		return errSigFormat
	}
	if _, err := hex.Decode(got[:], []byte(signature)); err != nil {
		return errSigFormat
	}
	want := sum(rawData, sessionKey)
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return errSigMismatch
	}
	return nil
}

// Sign returns hex(sha1(rawData + sessionKey)) in lower case, as the
// platform does, for tests and tools.
func Sign(rawData, sessionKey string) string {
	s := sum(rawData, sessionKey)
	return hex.EncodeToString(s[:])
}

func sum(rawData, sessionKey string) [sha1.Size]byte {
	h := sha1.New()
	h.Write([]byte(rawData))
	h.Write([]byte(sessionKey))
	var out [sha1.Size]byte
	h.Sum(out[:0])
	return out
}
