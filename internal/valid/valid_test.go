package valid

import (
	"errors"
	"strings"
	"testing"
)

func TestNickname(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"plain", "Amy", "Amy", nil},
		{"trimmed", "  小明  ", "小明", nil},
		{"CJK", "张伟", "张伟", nil},
		{"Japanese", "さくら", "さくら", nil},
		{"Hangul", "김민준", "김민준", nil},
		{"emoji", "😀 Joy", "😀 Joy", nil},
		{"family ZWJ sequence", "👨\u200d👩\u200d👧", "👨\u200d👩\u200d👧", nil},
		{"heart with VS16", "❤\ufe0f", "❤\ufe0f", nil},
		{"skin tone", "👍🏽", "👍🏽", nil},
		{"flag", "🇨🇳", "🇨🇳", nil},
		{"Devanagari conjunct with ZWJ", "क्\u200dष", "क्\u200dष", nil},
		{"Persian ZWNJ", "می\u200cخواهم", "می\u200cخواهم", nil},
		{"Arabic", "محمد", "محمد", nil},
		{"accents", "Zoë Ångström", "Zoë Ångström", nil},
		{"ideographic space inside", "张\u3000伟", "张\u3000伟", nil},
		{"64 runes", strings.Repeat("字", 64), strings.Repeat("字", 64), nil},

		{"empty", "", "", ErrNicknameEmpty},
		{"spaces", "   ", "", ErrNicknameEmpty},
		{"65 runes", strings.Repeat("字", 65), "", ErrNicknameTooLong},
		{"invalid UTF-8", "a\xffb", "", ErrNicknameUTF8},
		{"control", "a\x07b", "", ErrNicknameHidden},
		{"newline", "a\nb", "", ErrNicknameHidden},
		{"right-to-left override", "abc\u202Etxt.exe", "", ErrNicknameHidden},
		{"left-to-right mark", "\u200Eadmin", "", ErrNicknameHidden},
		{"bidi isolate", "a\u2066b\u2069", "", ErrNicknameHidden},
		{"zero-width space", "ad\u200Bmin", "", ErrNicknameHidden},
		{"zero-width only", "\u200B\u200B", "", ErrNicknameHidden},
		{"ZWJ only", "\u200D", "", ErrNicknameHidden},
		{"ZWJ at the end", "a\u200D", "", ErrNicknameHidden},
		{"ZWNJ at the start", "\u200Ca", "", ErrNicknameHidden},
		{"VS at the start", "\ufe0fa", "", ErrNicknameHidden},
		{"BOM", "\uFEFFamy", "", ErrNicknameHidden},
		{"soft hyphen", "am\u00ADy", "", ErrNicknameHidden},
		{"tag characters", "a\U000E0061\U000E0062", "", ErrNicknameHidden},
		{"private use", "a\uE000", "", ErrNicknameHidden},
		{"unassigned", "a\u0378", "", ErrNicknameHidden},
		{"line separator", "a\u2028b", "", ErrNicknameHidden},
		{"Hangul filler only", "\u3164", "", ErrNicknameInvisible},
		{"Hangul fillers and spaces", "\u3164 \u3164", "", ErrNicknameInvisible},
		{"halfwidth Hangul filler", "\uFFA0", "", ErrNicknameInvisible},
		{"blank braille", "\u2800\u2800", "", ErrNicknameInvisible},
		{"combining marks only", "\u0301\u0301", "", ErrNicknameInvisible},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Nickname(tc.in)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("Nickname(%+q) = %+q, %v; want %+q, %v", tc.in, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestSanitizeNickname(t *testing.T) {
	for in, want := range map[string]string{
		"Web Amy":               "Web Amy",
		"a\u202Eb":              "ab",
		"  \u200Bzoë\u200B ":    "zoë",
		"\u3164":                "",
		"a\xffb":                "ab",
		strings.Repeat("字", 70): strings.Repeat("字", 64),
		strings.Repeat("a", 63) + "👨\u200d👩": strings.Repeat("a", 63) + "👨",
		"👨\u200d👩\u200d👧":                    "👨\u200d👩\u200d👧",
	} {
		if got := SanitizeNickname(in); got != want {
			t.Errorf("SanitizeNickname(%+q) = %+q, want %+q", in, got, want)
		}
	}
}

func TestAvatarURL(t *testing.T) {
	for _, ok := range []string{
		"https://thirdwx.qlogo.cn/mmopen/vi_32/Q0j4TwGTfTK/132",
		"http://example.com/a.png",
		"https://cdn.example.com/a.png?size=132&v=2",
		"https://example.com/%E4%BD%A0.png",
		"https://example.com:8443/a_b-c~d.png#x",
		"https://[2001:db8::1]/a.png",
	} {
		if err := AvatarURL(ok); err != nil {
			t.Errorf("AvatarURL(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{
		"",
		`https://evil.com/"><script>alert(1)</script>`,
		"https://evil.com/'onerror='alert(1)",
		"https://evil.com/<img>",
		"https://evil.com/a b.png",
		"https://evil.com/\x00",
		"https://evil.com/\r\nX-Injected: 1",
		"https://evil.com/`x`",
		`https://evil.com/a\b`,
		"https://evil.com/你.png",
		"https://evil.com/%zz",
		"https://evil.com/%4",
		"https://user:pass@evil.com/a.png",
		"javascript:alert(1)",
		"data:image/png;base64,AAAA",
		"ftp://example.com/a.png",
		"//example.com/a.png",
		"/wx/avatar/abc",
		"https:/example.com",
		"https://example.com/" + strings.Repeat("a", 1024),
	} {
		if err := AvatarURL(bad); !errors.Is(err, ErrAvatarURL) {
			t.Errorf("AvatarURL(%q) = %v, want ErrAvatarURL", bad, err)
		}
	}
}
