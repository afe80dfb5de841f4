// Package valid holds the rules for what users and platforms may put into
// a profile: nicknames and avatar URLs. Both go upstream in identity
// headers and end up in pages, so the rules are about what can be shown
// safely, and they live here once for every way a profile arrives (posted
// by a client, decrypted from legacy user data, answered by the web
// login's userinfo).
package valid

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds. WeChat nicknames are far shorter; the bounds keep tokens and
// headers, which carry both, small.
const (
	MaxNicknameRunes  = 64
	MaxAvatarURLBytes = 1024
)

// Errors of Nickname; each says what to fix.
var (
	ErrNicknameEmpty     = errors.New(`"nickname" is empty`)
	ErrNicknameUTF8      = errors.New(`"nickname" is not valid UTF-8`)
	ErrNicknameTooLong   = fmt.Errorf(`"nickname" is longer than %d characters`, MaxNicknameRunes)
	ErrNicknameInvisible = errors.New(`"nickname" has no visible character`)
	ErrNicknameHidden    = errors.New(`"nickname" contains control, formatting (such as right-to-left overrides or zero-width characters), private-use or unassigned characters`)
	ErrAvatarURL         = errors.New(`"avatar_url" must be an absolute http or https URL of at most 1024 bytes with only URL characters (no quotes, angle brackets, spaces or non-ASCII), such as the avatarUrl getUserProfile returns`)
)

// Nickname trims a nickname and returns it, or says why it cannot be
// shown: empty, invalid UTF-8, too long, without a visible character, or
// with a hidden character (see allowedRune).
func Nickname(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", ErrNicknameEmpty
	case !utf8.ValidString(s):
		return "", ErrNicknameUTF8
	case utf8.RuneCountInString(s) > MaxNicknameRunes:
		return "", ErrNicknameTooLong
	}
	runes := []rune(s)
	visible := false
	for i, r := range runes {
		if !allowedRune(runes, i) {
			return "", ErrNicknameHidden
		}
		visible = visible || isVisible(r)
	}
	if !visible {
		return "", ErrNicknameInvisible
	}
	return s, nil
}

// SanitizeNickname makes a nickname the platform sent (which the user
// cannot change, and which must not fail a login) fit the rules: hidden
// characters are dropped, the rest is cut to MaxNicknameRunes and trimmed.
// It returns "" when nothing visible is left.
func SanitizeNickname(s string) string {
	runes := []rune(strings.ToValidUTF8(s, ""))
	kept := make([]rune, 0, len(runes))
	for i := range runes {
		if allowedRune(runes, i) {
			kept = append(kept, runes[i])
		}
	}
	if len(kept) > MaxNicknameRunes {
		kept = kept[:MaxNicknameRunes]
	}
	out, err := Nickname(string(kept))
	if err != nil {
		return "" // cutting left a joiner at the end, or nothing visible
	}
	return out
}

// Joiners and selectors that real names need: ZWJ inside emoji sequences
// (👨‍👩‍👧) and Indic conjuncts, ZWNJ in Persian and Indic scripts,
// variation selectors after a base character (❤️).
const (
	zwnj = '\u200C'
	zwj  = '\u200D'
)

func isVariationSelector(r rune) bool {
	return (r >= 0xFE00 && r <= 0xFE0F) || (r >= 0xE0100 && r <= 0xE01EF)
}

// allowedRune reports whether runes[i] may stand in a nickname where it
// stands. Refused: control characters and line or paragraph separators;
// format characters (bidi overrides and isolates, zero-width spaces, BOM,
// tag characters) except ZWJ and ZWNJ between two visible characters (or
// marks on them); variation selectors except right after one; private-use,
// surrogate and unassigned code points.
func allowedRune(runes []rune, i int) bool {
	r := runes[i]
	switch {
	case r == zwj || r == zwnj:
		return i > 0 && i+1 < len(runes) && joins(runes[i-1]) && joins(runes[i+1])
	case isVariationSelector(r):
		return i > 0 && joins(runes[i-1])
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs, unicode.Zl, unicode.Zp):
		return false
	}
	return assigned(r)
}

// assigned reports whether Unicode (as Go knows it) gives r a category.
func assigned(r rune) bool {
	return unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Zs)
}

// invisibleLetters are code points in visible categories that show
// nothing: the Hangul fillers and the blank braille pattern, favourites
// for names that look empty.
var invisibleLetters = map[rune]bool{
	'\u115F': true, '\u1160': true, '\u3164': true, '\uFFA0': true, '\u2800': true,
}

// joins reports whether a joiner or selector may stand beside r: a visible
// character, or a mark on one (a virama before a ZWJ in Devanagari).
func joins(r rune) bool {
	return isVisible(r) || unicode.Is(unicode.M, r) && !isVariationSelector(r)
}

// isVisible reports whether r shows something by itself: a letter, digit,
// punctuation mark or symbol, not a space, mark, joiner or filler.
func isVisible(r rune) bool {
	return unicode.In(r, unicode.L, unicode.N, unicode.P, unicode.S) && !invisibleLetters[r]
}

// AvatarURL accepts an absolute http(s) URL such as getUserProfile
// returns, with nothing in it that would need escaping in an HTML
// attribute or an HTTP header: only the characters of RFC 3986 (no quotes,
// angle brackets, backslashes, spaces, control or non-ASCII characters),
// percent signs only in escapes, and no credentials.
func AvatarURL(s string) error {
	if s == "" || len(s) > MaxAvatarURLBytes {
		return ErrAvatarURL
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return ErrAvatarURL
			}
			continue
		}
		if !urlByte(c) {
			return ErrAvatarURL
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Opaque != "" {
		return ErrAvatarURL
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// urlByte reports whether c may appear in an avatar URL as is: the
// unreserved and reserved characters of RFC 3986, less the apostrophe,
// which would end a single-quoted HTML attribute.
func urlByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~:/?#[]@!$&()*+,;=", c) >= 0
}
