package platform

import (
	"strings"
	"testing"
)

func TestKinds(t *testing.T) {
	tests := []struct {
		in      string
		kind    Kind
		apiBase string
		source  string
	}{
		{"wechat", WeChat, "https://api.weixin.qq.com", "wechat-miniprogram"},
		{"QQ", QQ, "https://api.q.qq.com", "qq-miniprogram"},
		{"wechat-web", WeChatWeb, "https://api.weixin.qq.com", "wechat-web"},
		{"wechat-qr", WeChatQR, "https://api.weixin.qq.com", "wechat-web"},
		{"douyin", Douyin, "https://developer.toutiao.com", "douyin-miniprogram"},
		{"Alipay", Alipay, "https://openapi.alipay.com", "alipay-miniprogram"},
		{"baidu", Baidu, "https://spapi.baidu.com", "baidu-miniprogram"},
	}
	for _, tt := range tests {
		k, err := ParseKind(tt.in)
		if err != nil || k != tt.kind {
			t.Errorf("ParseKind(%q) = %q, %v; want %q", tt.in, k, err, tt.kind)
			continue
		}
		if got := k.DefaultAPIBase(); got != tt.apiBase {
			t.Errorf("%s.DefaultAPIBase() = %q, want %q", k, got, tt.apiBase)
		}
		if got := k.Source(); got != tt.source {
			t.Errorf("%s.Source() = %q, want %q", k, got, tt.source)
		}
	}
}

func TestParseKindRejects(t *testing.T) {
	for _, in := range []string{"", "weixin", "wechat "} {
		_, err := ParseKind(in)
		if err == nil {
			t.Errorf("ParseKind(%q) succeeded", in)
			continue
		}
		for _, valid := range []string{"wechat", "qq", "wechat-web", "wechat-qr", "douyin", "alipay", "baidu"} {
			if !strings.Contains(err.Error(), valid) {
				t.Errorf("ParseKind(%q) error %q does not list %q", in, err, valid)
			}
		}
	}
	if Kind("nope").DefaultAPIBase() != "" || Kind("nope").Source() != "" {
		t.Error("an unknown kind has a base URL or source")
	}
}

func TestIsWeb(t *testing.T) {
	for k, want := range map[Kind]bool{WeChat: false, QQ: false, "": false, WeChatWeb: true, WeChatQR: true, "nope": false,
		Douyin: false, Alipay: false, Baidu: false} {
		if got := k.IsWeb(); got != want {
			t.Errorf("Kind(%q).IsWeb() = %v, want %v", k, got, want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	for k, want := range map[Kind][2]bool{WeChat: {true, true}, QQ: {true, true}, Douyin: {true, true},
		Alipay: {false, false}, Baidu: {false, false}} {
		if got := [2]bool{k.ChecksImages(), k.HasEncryptedUserData()}; got != want {
			t.Errorf("%s: ChecksImages, HasEncryptedUserData = %v, want %v", k, got, want)
		}
	}
}
