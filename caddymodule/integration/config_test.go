package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// adapt runs the Caddyfile adapter, as `caddy adapt` does.
func adapt(t *testing.T, caddyfile string) ([]byte, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	return out, err
}

// validate adapts and validates a Caddyfile, as `caddy validate` does:
// every module is provisioned, nothing is started.
func validate(t *testing.T, caddyfile string) error {
	t.Helper()
	out, err := adapt(t, caddyfile)
	if err != nil {
		return err
	}
	var cfg caddy.Config
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("adapted config does not decode: %v", err)
	}
	return caddy.Validate(&cfg)
}

func site(t *testing.T, block string) string {
	return `{
	admin off
	storage file_system ` + t.TempDir() + `
}
http://127.0.0.1:1 {
	wxauth {
` + block + `
	}
	respond ok
}`
}

func TestCaddyAdaptProducesTheHandler(t *testing.T) {
	out, err := adapt(t, site(t, `
		app wxadapt000000001 {
			secret {env.WX_SECRET}
			platform qq
			api_base https://api.example.test
			content_check off
		}
		app wxadapt000000002 {
			secret {env.WX_SECRET}
			scan_login pages/scan/index develop
		}
		endpoints /auth
		avatar_base https://cdn.example.test/wx/avatar/
		optional
		access_ttl 30m
		refresh_ttl 240h
		forward_phone
		rate_limit 20 10s
		platform_concurrency 4
		refresh_grace 0
		trusted_origins https://shop.example.test http://127.0.0.1:8081
	`))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`"handler":"wxauth"`, `"appid":"wxadapt000000001"`, `"secret":"{env.WX_SECRET}"`,
		`"platform":"qq"`, `"endpoints":"/auth"`, `"optional":true`, `"forward_phone":true`,
		`"access_ttl":1800000000000`, `"api_base":"https://api.example.test"`,
		`"content_check":false`, `"avatar_base":"https://cdn.example.test/wx/avatar/"`,
		`"rate_limit":{"requests":20,"window":10000000000}`, `"platform_concurrency":4`,
		`"refresh_grace":0`, `"trusted_origins":["https://shop.example.test","http://127.0.0.1:8081"]`,
		`"scan_login":{"env_version":"develop","page":"pages/scan/index"}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("adapted JSON lacks %s:\n%s", want, s)
		}
	}
	// Ordered before basic_auth without an order line: wxauth comes first
	// in the route when both are used.
	out, err = adapt(t, site(t, "app wxa\nsandbox")+"\nhttp://127.0.0.1:2 {\n basic_auth {\n  u $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG\n }\n wxauth {\n  app wxa\n  sandbox\n }\n respond ok\n}")
	if err != nil {
		t.Fatal(err)
	}
	s = string(out)
	if w, b := strings.LastIndex(s, `"handler":"wxauth"`), strings.LastIndex(s, `"handler":"authentication"`); w < 0 || b < 0 || w > b {
		t.Errorf("wxauth is not ordered before basic_auth:\n%s", s)
	}
}

func TestCaddyValidateAcceptsGoodConfigs(t *testing.T) {
	t.Setenv("WXAUTH_TEST_SECRET", "from-the-environment")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]string{
		"sandbox":        "app wxgood00000001\nsandbox",
		"env secret":     "app wxgood00000001 {\nsecret {env.WXAUTH_TEST_SECRET}\n}",
		"file secret":    "app wxgood00000001 {\nsecret {file." + secretFile + "}\n}",
		"hs256":          "app wxgood00000001\nsandbox\nsigning_key " + testSigningKey,
		"every option":   "app wxgood00000001 {\nplatform qq\nsecret s\n}\nendpoints /auth\noptional\naccess_ttl 10m\nrefresh_ttl 48h\nforward_phone\nplatform_timeout 3s\ntoken_cache_size 16MiB\nopen_base https://open.example.test",
		"two apps":       "app wxgood00000001\napp wxgood00000002\nsandbox",
		"web apps":       "app wxgood00000001 {\nplatform wechat-web\nscope snsapi_userinfo\n}\napp wxgood00000002 {\nplatform wechat-qr\n}\napp wxgood00000003\nsandbox",
		"content checks": "app wxgood00000001 {\ncontent_check off\n}\napp wxgood00000002 {\ncontent_check on\n}\nsandbox\navatar_base https://cdn.example.test/a/",
		"trailing slash": "app wxgood00000001\nsandbox\nendpoints /wx/",
		"limits":         "app wxgood00000001\nsandbox\nrate_limit 100 1m\nplatform_concurrency 32",
		"limit off":      "app wxgood00000001\nsandbox\nrate_limit off",
		"grace":          "app wxgood00000001\nsandbox\nrefresh_grace 1m\ntrusted_origins https://a.example.test\ntrusted_origins http://[::1]:8080",
		"grace off":      "app wxgood00000001\nsandbox\nrefresh_grace 0",
		"scan login":     "app wxgood00000001 {\nscan_login\n}\napp wxgood00000002 {\nscan_login pages/scan/index trial\n}\nsandbox",
	} {
		t.Run(name, func(t *testing.T) {
			if err := validate(t, site(t, block)); err != nil {
				t.Errorf("valid config refused: %v", err)
			}
		})
	}
}

func TestCaddyValidateRejectsBadConfigs(t *testing.T) {
	for _, tc := range []struct {
		name, block, want string
	}{
		{"no app", "sandbox", "no app configured"},
		{"missing secret", "app wxbad000000001", "has no secret"},
		{"empty env secret", "app wxbad000000001 {\nsecret {env.WXAUTH_SURELY_UNSET_VAR}\n}", "has no secret"},
		{"short signing key", "app wxbad000000001\nsandbox\nsigning_key tooshort", "at least 32 bytes"},
		{"bad duration", "app wxbad000000001\nsandbox\naccess_ttl forever", "access_ttl"},
		{"negative duration", "app wxbad000000001\nsandbox\nrefresh_ttl -5m", "refresh_ttl"},
		{"refresh shorter than access", "app wxbad000000001\nsandbox\naccess_ttl 2h\nrefresh_ttl 1h", "refresh_ttl must not be shorter"},
		{"unknown platform", "app wxbad000000001 {\nplatform wechatt\n}\nsandbox", "wechatt"},
		{"unknown option", "app wxbad000000001\nsandbox\nfrobnicate", "frobnicate"},
		{"unknown app option", "app wxbad000000001 {\nsecrett x\n}\nsandbox", "secrett"},
		{"app without id", "app\nsandbox", "appid"},
		{"bad appid", "app ../../etc\nsandbox", "not valid"},
		{"duplicate app", "app wxbad000000001\napp wxbad000000001\nsandbox", "twice"},
		{"bad api_base", "app wxbad000000001 {\nsecret s\n}\napi_base ftp://x", "api_base"},
		{"sandbox with api_base", "app wxbad000000001\nsandbox\napi_base http://127.0.0.1:1", "sandbox and api_base"},
		{"bad endpoints", "app wxbad000000001\nsandbox\nendpoints wx", "endpoints"},
		{"bad scope", "app wxbad000000001 {\nscope snsapi_all\n}\nsandbox", "scope"},
		{"bad cache size", "app wxbad000000001\nsandbox\ntoken_cache_size lots", "token_cache_size"},
		{"sandbox with open_base", "app wxbad000000001\nsandbox\nopen_base https://open.example.test", "sandbox and open_base"},
		{"scope on a mini program", "app wxbad000000001 {\nscope snsapi_userinfo\n}\nsandbox", "only to wechat-web"},
		{"scope on QR login", "app wxbad000000001 {\nplatform wechat-qr\nscope snsapi_userinfo\n}\nsandbox", "snsapi_login"},
		{"bad content_check", "app wxbad000000001 {\ncontent_check maybe\n}\nsandbox", "content_check"},
		{"bad avatar_base", "app wxbad000000001\nsandbox\navatar_base /relative", "avatar_base"},
		{"rate_limit without window", "app wxbad000000001\nsandbox\nrate_limit 60", "rate_limit takes"},
		{"rate_limit zero", "app wxbad000000001\nsandbox\nrate_limit 0 1m", "positive number of requests"},
		{"rate_limit bad window", "app wxbad000000001\nsandbox\nrate_limit 60 soon", "window"},
		{"rate_limit negative window", "app wxbad000000001\nsandbox\nrate_limit 60 -1m", "window"},
		{"platform_concurrency zero", "app wxbad000000001\nsandbox\nplatform_concurrency 0", "platform_concurrency"},
		{"negative grace", "app wxbad000000001\nsandbox\nrefresh_grace -1s", "refresh_grace"},
		{"grace past refresh_ttl", "app wxbad000000001\nsandbox\naccess_ttl 1h\nrefresh_ttl 1h\nrefresh_grace 2h", "refresh_grace"},
		{"origin with a path", "app wxbad000000001\nsandbox\ntrusted_origins https://a.example.test/", "not an origin"},
		{"origin without a scheme", "app wxbad000000001\nsandbox\ntrusted_origins a.example.test", "not an origin"},
		{"origin uppercase", "app wxbad000000001\nsandbox\ntrusted_origins HTTPS://a.example.test", "not an origin"},
		{"trusted_origins empty", "app wxbad000000001\nsandbox\ntrusted_origins", "at least one origin"},
		{"scan_login on a web app", "app wxbad000000001 {\nplatform wechat-qr\nscan_login\n}\nsandbox", "scan_login needs a WeChat mini program"},
		{"scan_login on QQ", "app wxbad000000001 {\nplatform qq\nscan_login\n}\nsandbox", "scan_login needs a WeChat mini program"},
		{"scan_login page with /", "app wxbad000000001 {\nscan_login /pages/scan/index\n}\nsandbox", "leading '/'"},
		{"scan_login page with a query", "app wxbad000000001 {\nscan_login pages/scan/index?x=1\n}\nsandbox", "without a query"},
		{"scan_login env_version", "app wxbad000000001 {\nscan_login pages/scan/index beta\n}\nsandbox", "release, trial or develop"},
		{"scan_login too many", "app wxbad000000001 {\nscan_login a trial b\n}\nsandbox", "at most a page"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(t, site(t, tc.block))
			if err == nil {
				t.Fatalf("bad config accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the problem (%q)", err, tc.want)
			}
		})
	}
}

func TestCaddyValidateNeverPrintsTheSecret(t *testing.T) {
	// A config error next to a secret must not echo the secret.
	err := validate(t, site(t, "app wxbad000000001 {\nsecret "+testSecret+"\n}\nsigning_key short"))
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "short ") {
		t.Errorf("error leaks a secret: %v", err)
	}
}
