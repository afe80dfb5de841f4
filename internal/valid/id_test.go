package valid

import (
	"strings"
	"testing"
)

func TestID(t *testing.T) {
	good := []string{"a", "wx1234567890abcdef", "o-AbC_123", strings.Repeat("a", 128)}
	for _, id := range good {
		if !ID(id) {
			t.Errorf("ID(%q) = false, want true", id)
		}
	}
	invalid := []string{
		"",
		"../x",
		"..",
		"a/b",
		`a\b`,
		"a.b",
		"a b",
		"abc\n", // Go's $ must not match before a trailing newline
		"a\x00b",
		strings.Repeat("a", 129),
		"用户",
		"ａｂｃ", // full-width letters are not ASCII
		"o-abc😀",
	}
	for _, id := range invalid {
		if ID(id) {
			t.Errorf("ID(%q) = true, want false", id)
		}
	}
}

func TestState(t *testing.T) {
	for _, ok := range []string{"abc123", strings.Repeat("Z", MaxStateLength)} {
		if !State(ok) {
			t.Errorf("State(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a_b", "a-b", "a b", strings.Repeat("Z", MaxStateLength+1)} {
		if State(bad) {
			t.Errorf("State(%q) = true", bad)
		}
	}
}
