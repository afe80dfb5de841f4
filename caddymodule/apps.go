package caddymodule

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/valid"
)

// AppConfig is one mini program or web app.
type AppConfig struct {
	AppID string `json:"appid"`
	// Secret is the appsecret; {env.*} and {file.*} placeholders keep it
	// out of the config itself (and out of the admin API's /config).
	Secret   string `json:"secret,omitempty"`
	Platform string `json:"platform,omitempty"`
	Scope    string `json:"scope,omitempty"`
	APIBase  string `json:"api_base,omitempty"`

	// ContentCheck set to false skips the platform's content check of this
	// app's nicknames and avatars (on by default). For apps whose own
	// moderation covers it, or where the check's quota is a problem.
	// Alipay and Baidu have no image check: their avatars are never
	// checked, and the startup log says so.
	ContentCheck *bool `json:"content_check,omitempty"`

	// PrivateKey is the app's own RSA private key (PEM, or the bare base64
	// Alipay's key tool writes), best given as {file./path}: Alipay apps
	// sign every request with it (required); Douyin apps decrypt phone
	// numbers with it (without it, /phone refuses Douyin users).
	PrivateKey string `json:"private_key,omitempty"`

	// AlipayPublicKey is Alipay's public key for the app (支付宝公钥 in
	// the console, not the app's own), best given as {file./path}: every
	// answer's signature is checked with it. Alipay apps only; required.
	AlipayPublicKey string `json:"alipay_public_key,omitempty"`
	// ScanLogin turns on website login by scanning this WeChat mini
	// program's own code (POST <endpoints>/scan and the rest).
	ScanLogin *ScanLogin `json:"scan_login,omitempty"`
}

// ScanLogin is the mini-program code a website shows for scan login: the
// page of the mini program it opens, with the ticket as its scene.
type ScanLogin struct {
	// Page is the mini-program page, such as pages/scan/index (no
	// leading "/", no query). Default: the app's home page.
	Page string `json:"page,omitempty"`
	// EnvVersion is the version the code opens: release (the default),
	// trial or develop.
	EnvVersion string `json:"env_version,omitempty"`
}

// check finds the mistakes of a scan_login line.
func (sl *ScanLogin) check() error {
	switch {
	case strings.HasPrefix(sl.Page, "/"):
		return fmt.Errorf("scan_login page %q: write it without the leading '/', such as pages/scan/index", sl.Page)
	case strings.ContainsAny(sl.Page, "?#% \t"):
		return fmt.Errorf("scan_login page %q: a page path only, without a query (the ticket is the code's scene)", sl.Page)
	case len(sl.Page) > 128:
		return fmt.Errorf("scan_login page %q is too long", sl.Page)
	}
	switch sl.EnvVersion {
	case "", platform.EnvRelease, platform.EnvTrial, platform.EnvDevelop:
		return nil
	}
	return fmt.Errorf("scan_login env_version %q: want release, trial or develop", sl.EnvVersion)
}

// webScope is the OAuth scope a web app asks for: snsapi_login for QR
// login, snsapi_base (a silent login) unless the operator asked for
// snsapi_userinfo on official-account pages.
func (ac AppConfig) webScope() string {
	switch kind, _ := ac.kind(); {
	case kind == platform.WeChatQR:
		return platform.ScopeLogin
	case ac.Scope != "":
		return ac.Scope
	}
	return platform.ScopeBase
}

// kind is the app's platform; wechat when none is set.
func (ac AppConfig) kind() (platform.Kind, error) {
	if ac.Platform == "" {
		return platform.WeChat, nil
	}
	return platform.ParseKind(ac.Platform)
}

// check finds the mistakes of one app's configuration.
func (ac AppConfig) check(sandbox bool) error {
	if !valid.ID(ac.AppID) {
		return fmt.Errorf("appid %q is not valid: use letters, digits, '_' or '-' (e.g. wx1234567890abcdef)", ac.AppID)
	}
	kind, err := ac.kind()
	if err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	switch {
	case ac.Scope != "" && kind == platform.WeChatQR:
		return fmt.Errorf("app %s: a wechat-qr app always uses scope snsapi_login; remove scope", ac.AppID)
	case ac.Scope != "" && kind != platform.WeChatWeb:
		return fmt.Errorf("app %s: scope applies only to wechat-web apps (official-account pages)", ac.AppID)
	case ac.Scope != "" && ac.Scope != platform.ScopeBase && ac.Scope != platform.ScopeUserInfo:
		return fmt.Errorf("app %s: scope %q: want snsapi_base or snsapi_userinfo", ac.AppID, ac.Scope)
	}
	if err := ac.checkKeys(kind, sandbox); err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	if ac.ScanLogin != nil {
		if kind != platform.WeChat {
			return fmt.Errorf("app %s: scan_login needs a WeChat mini program (platform wechat): only they have mini-program codes", ac.AppID)
		}
		if err := ac.ScanLogin.check(); err != nil {
			return fmt.Errorf("app %s: %w", ac.AppID, err)
		}
	}
	if !sandbox && ac.Secret == "" && kind != platform.Alipay {
		return fmt.Errorf("app %s has no secret; set `secret` (e.g. secret {env.WX_SECRET}) or use `sandbox` for development", ac.AppID)
	}
	if err := checkBaseURL("api_base", ac.APIBase); err != nil {
		return fmt.Errorf("app %s: %w", ac.AppID, err)
	}
	return nil
}

// checkKeys finds the mistakes of an app's keys that need nothing outside
// the config: keys on a platform that has none, Alipay's missing ones. A
// key given literally is parsed here; a placeholder when it is resolved.
func (ac AppConfig) checkKeys(kind platform.Kind, sandbox bool) error {
	switch {
	case ac.PrivateKey != "" && kind != platform.Alipay && kind != platform.Douyin:
		return errors.New("private_key applies only to alipay and douyin apps")
	case ac.AlipayPublicKey != "" && kind != platform.Alipay:
		return errors.New("alipay_public_key applies only to alipay apps")
	case kind == platform.Alipay && ac.Secret != "":
		return errors.New("alipay apps have no secret: they sign with private_key and check answers with alipay_public_key; remove secret")
	case kind == platform.Alipay && !sandbox && (ac.PrivateKey == "" || ac.AlipayPublicKey == ""):
		return errors.New("an alipay app needs private_key (the app's RSA2 private key) and alipay_public_key " +
			"(Alipay's public key from the console), e.g. private_key {file./etc/wxauth/alipay_app_private.pem}; or use `sandbox` for development")
	}
	if !sandbox && !strings.Contains(ac.PrivateKey, "{") {
		if _, err := privateKeyOf(ac.PrivateKey); err != nil {
			return err
		}
	}
	if !sandbox && !strings.Contains(ac.AlipayPublicKey, "{") {
		if _, err := publicKeyOf(ac.AlipayPublicKey); err != nil {
			return err
		}
	}
	return nil
}

// privateKeyOf parses a resolved private_key; "" is none. Its error says
// what is wrong, never what the key is.
func privateKeyOf(value string) (*rsa.PrivateKey, error) {
	if value == "" {
		return nil, nil
	}
	key, err := platform.ParsePrivateKey(value)
	if err != nil {
		return nil, fmt.Errorf("private_key is not an RSA private key (PEM, PKCS#1 or PKCS#8, or its bare base64): %v", err)
	}
	return key, nil
}

// publicKeyOf parses a resolved alipay_public_key; "" is none.
func publicKeyOf(value string) (*rsa.PublicKey, error) {
	if value == "" {
		return nil, nil
	}
	key, err := platform.ParsePublicKey(value)
	if err != nil {
		return nil, fmt.Errorf("alipay_public_key is not an RSA public key (PEM, or its bare base64 as Alipay's console shows it): %v", err)
	}
	return key, nil
}

// unresolved is the hint for a placeholder that resolved to nothing.
func unresolved(configured string) string {
	if strings.Contains(configured, "{") {
		return fmt.Sprintf(" (%s resolved to nothing: is the variable or file there?)", configured)
	}
	return ""
}

// resolveKeys gives an Alipay or Douyin app its keys: the sandbox's (which
// the in-process fake platform holds too), or the configured ones with
// their placeholders replaced. An error names the option and what is
// wrong, never the key.
func resolveKeys(sandbox bool, ac AppConfig, kind platform.Kind, repl *caddy.Replacer, app *platform.App) error {
	if kind != platform.Alipay && kind != platform.Douyin {
		return nil
	}
	if sandbox {
		keys := fakeplatform.SandboxKeys()
		app.PrivateKey = keys.App
		if kind == platform.Alipay {
			app.PlatformPublicKey = &keys.Alipay.PublicKey
		}
		return nil
	}
	private := repl.ReplaceKnown(ac.PrivateKey, "")
	if ac.PrivateKey != "" && private == "" {
		return fmt.Errorf("private_key is empty%s", unresolved(ac.PrivateKey))
	}
	var err error
	if app.PrivateKey, err = privateKeyOf(private); err != nil {
		return err
	}
	if kind != platform.Alipay {
		return nil
	}
	public := repl.ReplaceKnown(ac.AlipayPublicKey, "")
	if public == "" {
		return fmt.Errorf("alipay_public_key is empty%s", unresolved(ac.AlipayPublicKey))
	}
	app.PlatformPublicKey, err = publicKeyOf(public)
	return err
}

func checkBaseURL(name, raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("%s %q must be an http(s) URL such as https://api.weixin.qq.com", name, raw)
	}
	return nil
}
