package userdata

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// The sentinels tell a caller what to answer: ErrMalformed is the client's
// bug (bad request), ErrDecrypt almost always means the client must log in
// again, ErrWatermark means the data was made for another app, ErrSignature
// means rawData cannot be trusted.
var (
	// ErrMalformed: the input was rejected before decrypting (bad base64,
	// key or iv not 16 bytes, ciphertext empty, not whole blocks or too large).
	ErrMalformed = errors.New("userdata: malformed encrypted user data")
	// ErrDecrypt: the ciphertext decrypted to bad padding or to something
	// that is not a JSON object. With well-formed input this nearly always
	// means the session_key is stale: a newer wx.login replaced it.
	ErrDecrypt = errors.New("userdata: cannot decrypt user data")
	// ErrWatermark: the plaintext has no watermark, or the watermark names
	// another app.
	ErrWatermark = errors.New("userdata: watermark check failed")
	// ErrSignature: the signature is malformed or is not
	// sha1(rawData + session_key).
	ErrSignature = errors.New("userdata: bad signature")
)

// MaxEncryptedLen bounds the base64 encryptedData accepted, in characters.
// Real payloads are under 2 KiB; the bound keeps a hostile client from making
// the server decode and decrypt megabytes per request.
const MaxEncryptedLen = 16 << 10

// keyLen is both the AES-128 key size and the CBC iv size.
const keyLen = aes.BlockSize

// maxKeyB64 bounds the base64 text of a key or iv before decoding: 16 bytes
// are 24 characters; the slack allows a few stray newlines, and anything
// longer cannot be 16 bytes, so it is refused without allocating.
const maxKeyB64 = 64

// Fixed errors are allocated once: the decrypt path is hot and these carry
// no per-call detail.
var (
	// Bad padding and "not a JSON object" share one text on purpose, so
	// the answer is no padding oracle. An attacker could only query it
	// under their own session_key anyway; this is defence in depth.
	errStale = fmt.Errorf("%w: wrong or stale session_key (bad padding or not a JSON object); "+
		"the client should call wx.login and log in again", ErrDecrypt)
	errEmpty   = fmt.Errorf("%w: encryptedData is empty", ErrMalformed)
	errTooLong = fmt.Errorf("%w: encryptedData is longer than %d base64 characters", ErrMalformed, MaxEncryptedLen)
)

// Decrypt returns the plaintext of encryptedData (AES-128-CBC, PKCS#7) under
// sessionKey and iv, all base64 as the platform and the client send them.
//
// Every payload the platform encrypts this way is a JSON object, so Decrypt
// also requires that: with a wrong key, the padding alone still checks out
// about once in 256 tries, and the JSON test turns that garbage into
// ErrDecrypt instead of a silent success.
func Decrypt(sessionKey, encryptedData, iv string) ([]byte, error) {
	pt, err := decrypt(sessionKey, encryptedData, iv)
	if err != nil {
		return nil, err
	}
	if !json.Valid(pt) {
		return nil, errStale
	}
	return pt, nil
}

// decrypt is Decrypt up to the opening '{': DecryptUserInfo validates the
// JSON while parsing it, and scanning it twice would double its cost.
func decrypt(sessionKey, encryptedData, iv string) ([]byte, error) {
	var key, ivb [keyLen]byte
	if err := decodeKey(key[:], sessionKey, "session_key"); err != nil {
		return nil, err
	}
	if err := decodeKey(ivb[:], iv, "iv"); err != nil {
		return nil, err
	}
	ct, err := decodeCiphertext(encryptedData)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key[:])
	if err != nil {
		// Unreachable: the key is exactly 16 bytes by construction.
		return nil, fmt.Errorf("%w: session_key is not a valid AES-128 key", ErrMalformed)
	}
	cipher.NewCBCDecrypter(block, ivb[:]).CryptBlocks(ct, ct)
	pt, ok := unpad(ct)
	if !ok || !startsObject(pt) {
		return nil, errStale
	}
	return pt, nil
}

// Encrypt is the inverse of Decrypt with a fresh random iv, for tests, the
// sandbox and tools. It encrypts any bytes; Decrypt accepts only JSON
// objects, which lets tools build negative cases too.
func Encrypt(sessionKey string, plaintext []byte) (encryptedData, iv string, err error) {
	var key, ivb [keyLen]byte
	if err := decodeKey(key[:], sessionKey, "session_key"); err != nil {
		return "", "", err
	}
	n := (len(plaintext)/aes.BlockSize + 1) * aes.BlockSize
	if base64.StdEncoding.EncodedLen(n) > MaxEncryptedLen {
		// Refused so that Encrypt never produces what Decrypt refuses.
		return "", "", fmt.Errorf("%w: plaintext too large: encryptedData would exceed %d base64 characters",
			ErrMalformed, MaxEncryptedLen)
	}
	buf := make([]byte, n)
	copy(buf, plaintext)
	pad := byte(n - len(plaintext))
	for i := len(plaintext); i < n; i++ {
		buf[i] = pad
	}
	rand.Read(ivb[:]) // never fails since Go 1.24
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return "", "", fmt.Errorf("%w: session_key is not a valid AES-128 key", ErrMalformed)
	}
	cipher.NewCBCEncrypter(block, ivb[:]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), base64.StdEncoding.EncodeToString(ivb[:]), nil
}

// decodeKey decodes a session_key or iv into dst, which must be 16 bytes.
// The name goes into the error text; the value never does.
func decodeKey(dst []byte, s, name string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrMalformed, name)
	}
	if len(s) > maxKeyB64 {
		return fmt.Errorf("%w: %s is too long to be base64 of %d bytes", ErrMalformed, name, keyLen)
	}
	var nb [maxKeyB64]byte
	norm := normalizeB64(nb[:0], s)
	var out [maxKeyB64 * 3 / 4]byte
	n, err := base64.RawStdEncoding.Decode(out[:], norm)
	if err != nil {
		return fmt.Errorf("%w: %s is not valid base64", ErrMalformed, name)
	}
	if n != keyLen {
		return fmt.Errorf("%w: %s is %d bytes, want %d", ErrMalformed, name, n, keyLen)
	}
	copy(dst, out[:n])
	return nil
}

// decodeCiphertext decodes encryptedData and checks its shape, so that the
// cipher only ever sees whole blocks (CryptBlocks panics otherwise, and one
// well-known SDK crashes exactly there).
func decodeCiphertext(s string) ([]byte, error) {
	if len(s) > MaxEncryptedLen {
		return nil, errTooLong
	}
	norm := normalizeB64(make([]byte, 0, len(s)), s)
	if len(norm) == 0 {
		return nil, errEmpty
	}
	ct := make([]byte, base64.RawStdEncoding.DecodedLen(len(norm)))
	n, err := base64.RawStdEncoding.Decode(ct, norm)
	if err != nil {
		return nil, fmt.Errorf("%w: encryptedData is not valid base64", ErrMalformed)
	}
	ct = ct[:n]
	if n == 0 {
		return nil, errEmpty
	}
	if n%aes.BlockSize != 0 {
		return nil, fmt.Errorf("%w: encryptedData is %d bytes, not a whole number of %d-byte AES blocks",
			ErrMalformed, n, aes.BlockSize)
	}
	return ct, nil
}

// normalizeB64 appends s to dst repaired for the usual transport damage, for
// decoding with the unpadded standard alphabet. Every repair is unambiguous:
// ' ', '-' and '_' never occur in standard base64, so mapping them cannot turn
// one valid input into another, and the decoded length is still checked by
// the caller.
func normalizeB64(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ': // form decoding turned '+' into ' '
			c = '+'
		case '-': // URL-safe alphabet
			c = '+'
		case '_':
			c = '/'
		case '\r', '\n': // wrapped by a PEM-style encoder or pasted
			continue
		}
		dst = append(dst, c)
	}
	// Padding is optional; more than two '=' is not base64 and stays to fail.
	for k := 0; k < 2 && len(dst) > 0 && dst[len(dst)-1] == '='; k++ {
		dst = dst[:len(dst)-1]
	}
	return dst
}

// unpad strips PKCS#7 padding from b (a non-empty whole number of blocks).
// It runs in constant time in the padding bytes so that timing is no
// padding oracle either.
func unpad(b []byte) ([]byte, bool) {
	n := len(b)
	p := int(b[n-1])
	good := subtle.ConstantTimeLessOrEq(1, p) & subtle.ConstantTimeLessOrEq(p, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, p)
		same := subtle.ConstantTimeByteEq(b[n-i], byte(p))
		good &= 1 ^ (inPad & (1 ^ same))
	}
	if good != 1 {
		return nil, false
	}
	return b[:n-p], true
}

// startsObject reports whether the first non-space byte of b opens a JSON
// object; the caller validates the rest.
func startsObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}
