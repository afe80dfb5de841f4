package identity

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIsIdentityHeader(t *testing.T) {
	cases := []struct {
		name string
		want bool
	}{
		{"x-wx-openid", true},
		{"X-WX-OPENID", true},
		{"X-Wx-Openid", true},
		{"X_WX_OPENID", true},
		{"X-Wx_OpenId", true},
		{"x_wx-openid", true},
		{"X-WX-", true}, // the bare prefix is still in the family
		{"X_WX_", true},
		{"X-WX-ANYTHING-NEW", true},
		{"X-WXOPENID", false},
		{"X-W", false},
		{"XX-WX-A", false},
		{"x-wx", false},
		{"", false},
		{"X-WY-OPENID", false},
		{"Y-WX-OPENID", false},
		{" X-WX-OPENID", false},
		{"X-Wxyz", false},
		{"Authorization", false},
		{"X-Forwarded-For", false},
	}
	for _, c := range cases {
		if got := IsIdentityHeader(c.name); got != c.want {
			t.Errorf("IsIdentityHeader(%q) = %v, want %v", c.name, got, c.want)
		}
	}
}

// isIdentityHeaderSlow is the definition IsIdentityHeader must agree with.
func isIdentityHeaderSlow(name string) bool {
	return strings.HasPrefix(strings.ReplaceAll(strings.ToLower(name), "_", "-"), "x-wx-")
}

func FuzzIsIdentityHeader(f *testing.F) {
	for _, s := range []string{"", "x-wx-openid", "X_WX_OPENID", "X-Wx_OpenId", "X-WX-", "X-WXOPENID",
		"XX-WX-A", "x-wx", "X-W", "Authorization", "X-\u212A", "x-wx-\xff", "\xffx-wx-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := IsIdentityHeader(name), isIdentityHeaderSlow(name); got != want {
			t.Errorf("IsIdentityHeader(%q) = %v, reference says %v", name, got, want)
		}
	})
}

func TestStrip(t *testing.T) {
	h := http.Header{
		"X-Wx-Openid":     {"forged"},
		"X_wx_openid":     {"forged"},
		"x-wx-unionid":    {"forged"},
		"X-WX-PHONE":      {"forged"},
		"X-Wx_Nickname":   {"forged"},
		"X-Wx-":           {"forged"},
		"Authorization":   {"Bearer abc"},
		"X-Wxyz":          {"keep"},
		"X-Forwarded-For": {"203.0.113.7"},
		"Content-Type":    {"application/json"},
	}
	Strip(h)
	for name := range h {
		if IsIdentityHeader(name) {
			t.Errorf("Strip left %q", name)
		}
	}
	for _, keep := range []string{"Authorization", "X-Wxyz", "X-Forwarded-For", "Content-Type"} {
		if len(h[keep]) != 1 {
			t.Errorf("Strip removed %q", keep)
		}
	}
	if len(h) != 4 {
		t.Errorf("after Strip header has %d names, want 4: %v", len(h), h)
	}
	if h.Get("Authorization") != "Bearer abc" {
		t.Errorf("Authorization changed to %q", h.Get("Authorization"))
	}
	Strip(nil) // must not panic
}

// A proxy deletes the headers Connection names, after the gate added the
// verified ones; Strip must leave Connection unable to name any of them,
// and keep every other option (close, keep-alive, real hop-by-hop headers).
func TestStripConnectionOptions(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []string // nil: no Connection header left
	}{
		{[]string{"X-WX-OPENID"}, nil},
		{[]string{"close, X-Wx-Appid, x_wx_unionid"}, []string{"close"}},
		{[]string{"keep-alive", " X-WX-SOURCE ,X-Custom-Hop"}, []string{"keep-alive", "X-Custom-Hop"}},
		{[]string{"x-wx-nickname", "x-wx-avatar"}, nil},
		{[]string{"close"}, []string{"close"}},
		{[]string{"X-Wxyz, Upgrade"}, []string{"X-Wxyz, Upgrade"}}, // not the family: untouched
		{[]string{""}, []string{""}},
	} {
		h := http.Header{"Connection": tc.in, "X-Wx-Openid": {"verified later"}}
		Strip(h)
		if got := h["Connection"]; !slices.Equal(got, tc.want) || (tc.want == nil && got != nil) {
			t.Errorf("Connection %q: after Strip %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestNamesIdentityHeaderDoesNotAllocate(t *testing.T) {
	values := []string{"keep-alive, Upgrade", "close"}
	if n := testing.AllocsPerRun(100, func() { namesIdentityHeader(values) }); n != 0 {
		t.Errorf("namesIdentityHeader allocates %v times per call", n)
	}
}

var fullIdentity = Identity{
	SessionID: "sid",
	AppID:     "wx123",
	OpenID:    "o-1",
	UnionID:   "u-1",
	Source:    "wechat-miniprogram",
	Nickname:  "小明 😀",
	AvatarURL: "https://example.com/a.png",
	Phone:     "+8613800000000",
}

func TestNewHeaders(t *testing.T) {
	h := http.Header{}
	NewHeaders(fullIdentity, false).Apply(h)
	want := map[string]string{
		HeaderOpenID:   "o-1",
		HeaderAppID:    "wx123",
		HeaderUnionID:  "u-1",
		HeaderNickname: EncodeNickname("小明 😀"),
		HeaderAvatar:   "https://example.com/a.png",
		HeaderSource:   "wechat-miniprogram",
	}
	for name, v := range want {
		if got := h.Get(name); got != v {
			t.Errorf("%s = %q, want %q", name, got, v)
		}
	}
	if h.Get(HeaderPhone) != "" {
		t.Errorf("phone forwarded without forwardPhone: %q", h.Get(HeaderPhone))
	}
	if len(h) != len(want) {
		t.Errorf("headers = %v, want exactly %d", h, len(want))
	}
	// Keys are stored canonical, so h.Get (and upstream proxies) find them.
	for name := range h {
		if name != http.CanonicalHeaderKey(name) {
			t.Errorf("non-canonical key %q", name)
		}
	}
	// The session id is not an upstream header.
	for _, vs := range h {
		for _, v := range vs {
			if v == "sid" {
				t.Error("session id leaked into a header")
			}
		}
	}

	h = http.Header{}
	NewHeaders(fullIdentity, true).Apply(h)
	if got := h.Get(HeaderPhone); got != "+8613800000000" {
		t.Errorf("with forwardPhone %s = %q", HeaderPhone, got)
	}

	// Empty values are omitted, not sent as empty headers.
	h = http.Header{}
	hs := NewHeaders(Identity{SessionID: "sid", AppID: "wx123", OpenID: "o-1"}, true)
	hs.Apply(h)
	if len(h) != 2 || h.Get(HeaderOpenID) != "o-1" || h.Get(HeaderAppID) != "wx123" {
		t.Errorf("minimal identity headers = %v, want only openid and appid", h)
	}
	for _, name := range []string{HeaderUnionID, HeaderNickname, HeaderAvatar, HeaderSource, HeaderPhone} {
		if _, ok := h[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("empty %s was set", name)
		}
	}
	if hs.Size() <= 0 {
		t.Errorf("Size() = %d", hs.Size())
	}
	if (Headers{}).Size() != 0 {
		t.Errorf("empty Size() = %d", (Headers{}).Size())
	}
}

// Apply overwrites forged values rather than appending to them.
func TestApplyReplacesExisting(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderOpenID, "forged")
	NewHeaders(fullIdentity, false).Apply(h)
	if got := h.Values(HeaderOpenID); len(got) != 1 || got[0] != "o-1" {
		t.Errorf("%s = %v, want [o-1]", HeaderOpenID, got)
	}
}

// The Headers value is cached and applied to many requests. A handler that
// edits a header in place, or appends to it, must not change what the next
// request gets or a neighbouring header of the same request.
func TestApplyGivesEachRequestItsOwnValues(t *testing.T) {
	hs := NewHeaders(fullIdentity, true)
	h1 := http.Header{}
	hs.Apply(h1)
	for k := range h1 {
		h1[k][0] = "tampered"
	}
	h2 := http.Header{}
	hs.Apply(h2)
	if got := h2.Get(HeaderOpenID); got != "o-1" {
		t.Errorf("second Apply %s = %q: first request's edit leaked into the cache", HeaderOpenID, got)
	}
	for k, v := range h2 {
		if v[0] == "tampered" {
			t.Errorf("second Apply %s = %q", k, v[0])
		}
	}

	// Appending to one header must not overwrite the next one's value,
	// which shares the per-request backing array.
	h3 := http.Header{}
	hs.Apply(h3)
	h3.Add(HeaderOpenID, "appended")
	if got := h3.Get(HeaderAppID); got != "wx123" {
		t.Errorf("append to %s changed %s to %q", HeaderOpenID, HeaderAppID, got)
	}
	if got := h3.Values(HeaderOpenID); len(got) != 2 || got[0] != "o-1" {
		t.Errorf("%s = %v", HeaderOpenID, got)
	}
	h4 := http.Header{}
	hs.Apply(h4)
	if got := h4.Values(HeaderOpenID); len(got) != 1 {
		t.Errorf("append on one request reached another: %v", got)
	}
}

// isPrintableASCIINoSpace is what may safely sit in a header value.
func isPrintableASCIINoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func TestNicknameRoundTrip(t *testing.T) {
	for _, nick := range []string{
		"😀小明 a+b%c",
		"小明",
		"김철수",
		"ニックネーム",
		"tab\there\r\nnewline\x00nul\x7fdel",
		"  leading and trailing  ",
		"a/b?c#d&e=f;g,h",
		"%20",
		"+",
		"plain",
	} {
		enc := EncodeNickname(nick)
		if !isPrintableASCIINoSpace(enc) {
			t.Errorf("EncodeNickname(%q) = %q: not printable ASCII without spaces", nick, enc)
		}
		dec, err := DecodeNickname(enc)
		if err != nil {
			t.Errorf("DecodeNickname(%q): %v", enc, err)
			continue
		}
		if dec != nick {
			t.Errorf("round trip %q -> %q -> %q", nick, enc, dec)
		}
	}
	// A space must be %20, not '+': decodeURIComponent leaves '+' alone.
	if enc := EncodeNickname("a b"); enc != "a%20b" {
		t.Errorf("EncodeNickname(\"a b\") = %q, want a%%20b", enc)
	}
	// '+' in a nickname must stay '+' after decoding, so it must not be
	// ambiguous with a space.
	if enc := EncodeNickname("a+b"); strings.Contains(enc, " ") {
		t.Errorf("EncodeNickname(\"a+b\") = %q", enc)
	}
	if EncodeNickname("") != "" {
		t.Error("empty nickname encodes to something")
	}
	if _, err := DecodeNickname("%zz"); err == nil {
		t.Error("DecodeNickname accepted a broken escape")
	}
}

func FuzzNicknameRoundTrip(f *testing.F) {
	for _, s := range []string{"", "😀小明 a+b%c", "小明", "\x00\x01\t\n", "%", "%%20", " a ", "a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, nick string) {
		if !utf8.ValidString(nick) {
			t.Skip("nicknames come from JSON, so they are valid UTF-8")
		}
		enc := EncodeNickname(nick)
		if !isPrintableASCIINoSpace(enc) {
			t.Fatalf("EncodeNickname(%q) = %q: not printable ASCII without spaces", nick, enc)
		}
		dec, err := DecodeNickname(enc)
		if err != nil {
			t.Fatalf("DecodeNickname(%q): %v", enc, err)
		}
		if dec != nick {
			t.Fatalf("round trip %q -> %q -> %q", nick, enc, dec)
		}
	})
}

// BenchmarkStripAndApply is the gate's per-request header work: strip what
// the client sent (one forged identity header among ordinary ones), then set
// the cached identity headers.
func BenchmarkStripAndApply(b *testing.B) {
	hs := NewHeaders(fullIdentity, false)
	template := http.Header{
		"Host":            {"api.example.com"},
		"User-Agent":      {"Mozilla/5.0 (iPhone) MicroMessenger/8.0.50"},
		"Accept":          {"application/json"},
		"Accept-Encoding": {"gzip, deflate, br"},
		"Accept-Language": {"zh-CN,zh;q=0.9"},
		"Authorization":   {"Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"},
		"Content-Type":    {"application/json"},
		"Referer":         {"https://servicewechat.com/wx123/1/page-frame.html"},
		"X-Forwarded-For": {"203.0.113.7"},
		"X_wx_openid":     {"forged"},
	}
	h := make(http.Header, len(template)+8)
	b.ReportAllocs()
	// Refilling the map is timed too (StopTimer per iteration would cost
	// more than the work measured); it allocates nothing, since a cleared
	// map keeps its buckets, so allocs/op is Apply's alone.
	for b.Loop() {
		clear(h)
		for k, v := range template {
			h[k] = v
		}
		Strip(h)
		hs.Apply(h)
	}
	if h.Get(HeaderOpenID) != "o-1" || len(h["X_wx_openid"]) != 0 {
		b.Fatalf("unexpected headers after Strip+Apply: %v", h)
	}
}
