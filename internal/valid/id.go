package valid

// MaxIDLength bounds an id taken from outside: an appid, an openid or a
// unionid the platform sends, a session id we made.
const MaxIDLength = 128

// ID reports whether s is a plausible id: 1 to MaxIDLength bytes of
// [A-Za-z0-9_-]. That is every appid, openid, unionid and session id, and
// it is what may go into a storage key taken from outside: anything else
// could walk out of the storage folder on a file system.
func ID(s string) bool {
	return s != "" && len(s) <= MaxIDLength && onlyBytes(s, true)
}

// MaxStateLength is WeChat's limit on an authorize page's state.
const MaxStateLength = 128

// State reports whether s is a state WeChat accepts: 1 to
// MaxStateLength bytes of [A-Za-z0-9].
func State(s string) bool {
	return s != "" && len(s) <= MaxStateLength && onlyBytes(s, false)
}

// onlyBytes reports whether s holds only ASCII letters and digits, and
// '_' and '-' with underscores.
func onlyBytes(s string, underscores bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case underscores && (c == '_' || c == '-'):
		default:
			return false
		}
	}
	return true
}
