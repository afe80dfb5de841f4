package token

import "crypto/rand"

// RandomAlnum is n random characters of [A-Za-z0-9] (5.95 bits each): web
// login states and scan-login tickets, which go where only such
// characters may (an OAuth state, a mini-program code's scene).
func RandomAlnum(n int) (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	for i := range b {
		// 256 = 4*62 + 8: the slight bias toward the first 8 letters
		// costs well under a bit in 32 characters.
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}
