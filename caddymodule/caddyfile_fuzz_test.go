package caddymodule

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// exampleBlock is the wxauth block of Caddyfile.example.
const exampleBlock = `wxauth {
	app wxdemo0000000001 {
		# In production: secret {env.WX_APPSECRET} and no sandbox.
	}
	# Web login for pages (official-account H5, or a website with
	# platform wechat-qr). Open http://localhost:8080/orders in a browser.
	app wxdemoweb0000001 {
		platform wechat-web
		scope snsapi_userinfo
	}
	sandbox
	# Send the phone number upstream too, once the user shared it
	# (POST /wx/phone).
	forward_phone
}`

// everyOption sets every option the directive has, once.
const everyOption = `wxauth {
	app wx1234567890abcdef {
		secret {env.WX_SECRET}
		platform wechat
		api_base https://api.weixin.qq.com
		content_check off
		scan_login pages/scan/index trial
	}
	app wxweb0000000001 {
		secret "a secret with spaces"
		platform wechat-web
		scope snsapi_base
		content_check on
	}
	app 1110000000 {
		secret s
		platform qq
	}
	app wxqr00000000001 {
		secret s
		platform wechat-qr
	}
	app tt1234567890abcdef {
		secret s
		platform douyin
		private_key {file./etc/wxauth/douyin_app_private.pem}
	}
	app 2021001168648384 {
		platform alipay
		private_key {file./etc/wxauth/alipay_app_private.pem}
		alipay_public_key {file./etc/wxauth/alipay_public.pem}
	}
	app BaiduAppKey0001 {
		secret s
		platform baidu
	}
	api_base http://127.0.0.1:9000
	open_base https://open.example.com
	endpoints /auth/wx/
	optional
	access_ttl 30m
	refresh_ttl 30d
	signing_key {env.WX_SIGNING_KEY}
	forward_phone
	platform_timeout 1.5s
	token_cache_size 64MiB
	revocation_sync 250ms
	sweep_interval 1h30m
	avatar_base https://cdn.example.com/wx/avatar
}`

// FuzzUnmarshalCaddyfile feeds arbitrary text to the directive's parser, as
// Caddy would hand it over after tokenizing. Nothing may panic; whatever
// parses must survive the JSON round trip Caddy puts every config through
// (the Caddyfile adapter marshals it, Provision gets it unmarshalled), and
// checkConfig must give the same verdict on both sides of it.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		exampleBlock,
		everyOption,
		"wxauth",
		"wxauth {\n}",
		"wxauth /api/* {\n\tapp wx1\n}",
		"wxauth {\n\tapp wx1 {\n\t\tsecret s\n\t}\n\taccess_ttl -5m\n}",
		"wxauth {\n\tapp wx1\n\trefresh_ttl 0s\n}",
		"wxauth {\n\tapp wx1\n\tsweep_interval soon\n}",
		"wxauth {\n\tapp wx1\n\tplatform_timeout 9999999999d\n}",
		"wxauth {\n\tapp wx1\n\ttoken_cache_size 0\n}",
		"wxauth {\n\tapp wx1\n\ttoken_cache_size 2TiB\n}",
		"wxauth {\n\tapp wx1 secret\n}",
		"wxauth {\n\tapp {\n\t\tsecret s\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tplatform alipay\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tplatform alipay\n\t\tsecret s\n\t\tprivate_key not-a-key\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tprivate_key\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tscope snsapi_login\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tcontent_check maybe\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tapp wx2 {\n\t\t\tsecret s\n\t\t}\n\t}\n}",
		"wxauth {\n\tsandbox {\n\t\toptional\n\t}\n}",
		"wxauth {\n\tapp wx1 {\n\t\tsecret s\n}",
		"wxauth {\n\tapp wx1 {\n",
		"wxauth {\n\t}\n}\n}",
		"wxauth {\n\tsandbox extra\n}",
		"wxauth {\n\tendpoints\n}",
		"wxauth {\n\tendpoints /a /b\n}",
		"wxauth {\n\tunknown_option\n}",
		"wxauth {\n\tapp wx1\n\tapp wx1\n}",
		"wxauth {\n\tapp wx1\n\tsigning_key \"\xff\xfe\"\n}",
		"wxauth {\n\tapp \"\"\n}",
		"wxauth {\n\tapp `wx 1`\n\tendpoints <<END\n\t/wx\n\tEND\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		// caddyfile.NewTestDispenser would do, but it calls log.Fatal on
		// input the lexer refuses (an unterminated quote or heredoc), which
		// would kill the fuzzer; Caddy reports such a file before any
		// directive sees it.
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		verdict := fmt.Sprint(h.checkConfig())

		raw, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("marshal %+v: %v", h, err)
		}
		var back Handler
		if err := json.Unmarshal(raw, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", raw, err)
		}
		if !utf8.ValidString(input) {
			// encoding/json writes invalid UTF-8 as U+FFFD, in every Caddy
			// module's config alike: not this module's round trip to check.
			return
		}
		if !reflect.DeepEqual(h, back) {
			t.Fatalf("round trip changed the config:\n%+v\n%s\n%+v", h, raw, back)
		}
		if got := fmt.Sprint(back.checkConfig()); got != verdict {
			t.Fatalf("checkConfig: %s before the round trip, %s after", verdict, got)
		}
	})
}
