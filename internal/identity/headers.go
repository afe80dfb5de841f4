// Package identity turns a verified token into the headers an upstream app
// reads, and removes any such header a client tried to send itself.
package identity

import (
	"net/http"
	"net/url"
	"strings"
)

// The headers an upstream app reads. They match what WeChat Cloud Run
// injects, so apps written for it run unchanged.
const (
	HeaderOpenID   = "X-WX-OPENID"
	HeaderAppID    = "X-WX-APPID"
	HeaderUnionID  = "X-WX-UNIONID"
	HeaderNickname = "X-WX-NICKNAME"
	HeaderAvatar   = "X-WX-AVATAR"
	HeaderSource   = "X-WX-SOURCE"
	HeaderPhone    = "X-WX-PHONE"
)

// IsIdentityHeader reports whether a header name is in the X-WX- family,
// compared case-insensitively with '_' counted as '-'. Some servers and
// frameworks (CGI, PHP, nginx with underscores_in_headers) read X_WX_OPENID
// as X-WX-OPENID, so a forged underscore variant is as dangerous as the
// real name.
func IsIdentityHeader(name string) bool {
	const prefix = "x-wx-"
	if len(name) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		c := name[i]
		if c == '_' {
			c = '-'
		} else if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != prefix[i] {
			return false
		}
	}
	return true
}

// Strip removes every identity header from h, whatever its spelling, and
// every identity header named as an option of its Connection header. A
// proxy deletes the headers that Connection names before it forwards a
// request (they are hop-by-hop), after the gate has added the verified
// ones: "Connection: X-WX-OPENID" would otherwise let a client make its
// verified identity headers vanish on the way to the upstream.
func Strip(h http.Header) {
	for name := range h {
		if IsIdentityHeader(name) {
			delete(h, name)
		}
	}
	if conn, ok := h["Connection"]; ok && namesIdentityHeader(conn) {
		if kept := withoutIdentityOptions(conn); len(kept) > 0 {
			h["Connection"] = kept
		} else {
			delete(h, "Connection")
		}
	}
}

// namesIdentityHeader reports whether any comma-separated option of the
// Connection values is an identity header name. It does not allocate: it
// runs on every gated request that has a Connection header.
func namesIdentityHeader(values []string) bool {
	for _, v := range values {
		for v != "" {
			var option string
			option, v, _ = strings.Cut(v, ",")
			if IsIdentityHeader(strings.TrimSpace(option)) {
				return true
			}
		}
	}
	return false
}

// withoutIdentityOptions returns the Connection values with the identity
// header options taken out; values left empty are dropped.
func withoutIdentityOptions(values []string) []string {
	var kept []string
	for _, v := range values {
		var options []string
		for _, option := range strings.Split(v, ",") {
			if option = strings.TrimSpace(option); option != "" && !IsIdentityHeader(option) {
				options = append(options, option)
			}
		}
		if len(options) > 0 {
			kept = append(kept, strings.Join(options, ", "))
		}
	}
	return kept
}

// Headers is the precomputed set of identity headers for one token, built
// once when the token is first verified and reused from the cache after.
type Headers struct {
	names  []string // canonical header keys
	values []string // one value per name
}

// canonical keys, computed once so the hot path never canonicalises.
var (
	keyOpenID   = http.CanonicalHeaderKey(HeaderOpenID)
	keyAppID    = http.CanonicalHeaderKey(HeaderAppID)
	keyUnionID  = http.CanonicalHeaderKey(HeaderUnionID)
	keyNickname = http.CanonicalHeaderKey(HeaderNickname)
	keyAvatar   = http.CanonicalHeaderKey(HeaderAvatar)
	keySource   = http.CanonicalHeaderKey(HeaderSource)
	keyPhone    = http.CanonicalHeaderKey(HeaderPhone)
)

// NewHeaders builds the headers for id. The phone number is included only
// when forwardPhone is set (the operator's `forward_phone`).
func NewHeaders(id Identity, forwardPhone bool) Headers {
	var h Headers
	add := func(name, value string) {
		if value != "" {
			h.names = append(h.names, name)
			h.values = append(h.values, value)
		}
	}
	add(keyOpenID, id.OpenID)
	add(keyAppID, id.AppID)
	add(keyUnionID, id.UnionID)
	add(keyNickname, EncodeNickname(id.Nickname))
	add(keyAvatar, id.AvatarURL)
	add(keySource, id.Source)
	if forwardPhone {
		add(keyPhone, id.Phone)
	}
	return h
}

// Apply sets the headers on h. The values are copied into one fresh backing
// array per request, so a later handler that edits a header in place cannot
// change what the cache hands to the next request.
func (hs Headers) Apply(h http.Header) {
	vals := make([]string, len(hs.values))
	copy(vals, hs.values)
	for i, name := range hs.names {
		h[name] = vals[i : i+1 : i+1]
	}
}

// Size estimates the bytes the headers hold, for cache cost accounting.
func (hs Headers) Size() int {
	n := 48 * len(hs.names)
	for _, v := range hs.values {
		n += len(v)
	}
	return n
}

// EncodeNickname percent-encodes a nickname as UTF-8 so that emoji, CJK and
// any control characters survive an HTTP header. Upstream apps decode it with
// their URL-decoding function (decodeURIComponent, urllib.parse.unquote, ...).
func EncodeNickname(nickname string) string {
	if nickname == "" {
		return ""
	}
	// PathEscape, not QueryEscape: a space becomes %20, which every decoder
	// reads as a space, where '+' would survive decodeURIComponent as '+'.
	return url.PathEscape(nickname)
}

// DecodeNickname reverses EncodeNickname.
func DecodeNickname(encoded string) (string, error) {
	return url.PathUnescape(strings.TrimSpace(encoded))
}
