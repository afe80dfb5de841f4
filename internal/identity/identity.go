package identity

// Identity is who a verified request comes from: what an access token
// asserts, and what the identity headers tell the upstream.
type Identity struct {
	SessionID string // access token claim "sid"
	AppID     string // claim "app"
	OpenID    string // standard "sub"
	UnionID   string // "uid", omitempty
	Source    string // "src" (e.g. "wechat-miniprogram")
	Nickname  string // "nick", omitempty
	AvatarURL string // "ava", omitempty
	Phone     string // "phn", omitempty
}
