package userdata

import (
	"errors"
	"strings"
	"testing"
)

const (
	sigSessionKey = "HyVFkGl5F5OQWJZZaNzBBg=="
	sigRawData    = `{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}`
	sigSignature  = "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
)

func TestSign(t *testing.T) {
	if got := Sign(sigRawData, sigSessionKey); got != sigSignature {
		t.Fatalf("Sign = %s, want %s", got, sigSignature)
	}
}

func TestVerifySignature(t *testing.T) {
	flipped := "85e81ceda165f4ffa64f4068af58c64b8f54b88c"
	tests := []struct {
		name                  string
		rawData, sig, session string
		want                  error // nil for success
	}{
		{"match", sigRawData, sigSignature, sigSessionKey, nil},
		{"upper-case hex", sigRawData, strings.ToUpper(sigSignature), sigSessionKey, nil},
		{"mixed-case hex", sigRawData, "75E81ceda165f4ffa64f4068af58c64b8f54b88C", sigSessionKey, nil},
		{"mismatch: one digit", sigRawData, flipped, sigSessionKey, ErrSignature},
		{"mismatch: rawData changed", strings.Replace(sigRawData, "Band", "Bond", 1), sigSignature, sigSessionKey, ErrSignature},
		{"mismatch: other session key", sigRawData, sigSignature, canaryKey, ErrSignature},
		{"mismatch: key padding dropped", sigRawData, sigSignature, strings.TrimRight(sigSessionKey, "="), ErrSignature},
		{"empty signature", sigRawData, "", sigSessionKey, ErrSignature},
		{"39 digits", sigRawData, sigSignature[:39], sigSessionKey, ErrSignature},
		{"41 digits", sigRawData, sigSignature + "0", sigSessionKey, ErrSignature},
		{"sha256 length", sigRawData, sigSignature + sigSignature[:24], sigSessionKey, ErrSignature},
		{"non-hex", sigRawData, "75e81ceda165f4ffa64f4068af58c64b8f54b88g", sigSessionKey, ErrSignature},
		{"surrounding space", sigRawData, " " + sigSignature[1:], sigSessionKey, ErrSignature},
		{"empty session key", sigRawData, Sign(sigRawData, ""), "", ErrMalformed},
		{"session key not base64", sigRawData, Sign(sigRawData, "not a key!"), "not a key!", ErrMalformed},
		{"session key 15 bytes", sigRawData, Sign(sigRawData, b64(make([]byte, 15))), b64(make([]byte, 15)), ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifySignature(tt.rawData, tt.sig, tt.session)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("VerifySignature: %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if n := sentinelCount(err); n != 1 {
				t.Errorf("error %q wraps %d sentinels, want 1", err, n)
			}
			assertNoLeak(t, err, tt.rawData, tt.sig, tt.session, sigSessionKey, canaryKey,
				"nickName", "Band", "Bond", sigSignature[:8], flipped[:8])
		})
	}
}
