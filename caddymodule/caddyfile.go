package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/wxauth/caddy-wxauth/internal/platform"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("wxauth", parseCaddyfile)
	// Before basic_auth, like other authentication handlers, so sites need
	// no `order` line.
	httpcaddyfile.RegisterDirectiveOrder("wxauth", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(helper httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	h := new(Handler)
	err := h.UnmarshalCaddyfile(helper.Dispenser)
	return h, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	wxauth [<matcher>] {
//	    app <appid> {
//	        secret <appsecret>
//	        platform wechat|qq|wechat-web|wechat-qr|douyin|alipay|baidu
//	        scope snsapi_base|snsapi_userinfo
//	        api_base <url>
//	        content_check on|off
//	        private_key <pem>              # alipay, douyin; e.g. {file./etc/wxauth/app.pem}
//	        alipay_public_key <pem>        # alipay
//	        scan_login [<page> [release|trial|develop]]
//	    }
//	    sandbox
//	    api_base <url>
//	    open_base <url>
//	    endpoints <path-prefix>
//	    optional
//	    access_ttl <duration>
//	    refresh_ttl <duration>
//	    signing_key <secret>
//	    forward_phone
//	    platform_timeout <duration>
//	    token_cache_size <size>
//	    revocation_sync <duration>
//	    sweep_interval <duration>
//	    avatar_base <url>
//	    rate_limit <requests> <window> | off
//	    platform_concurrency <n>
//	    refresh_grace <duration>
//	    trusted_origins <origin>...
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	flags := map[string]*bool{"sandbox": &h.Sandbox, "optional": &h.Optional, "forward_phone": &h.ForwardPhone}
	words := map[string]*string{"api_base": &h.APIBase, "open_base": &h.OpenBase, "endpoints": &h.Endpoints,
		"avatar_base": &h.AvatarBase, "signing_key": &h.SigningKey}
	durations := map[string]*caddy.Duration{"access_ttl": &h.AccessTTL, "refresh_ttl": &h.RefreshTTL,
		"platform_timeout": &h.PlatformTimeout, "revocation_sync": &h.RevocationSync, "sweep_interval": &h.SweepInterval}
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch {
		case flags[opt] != nil:
			if d.NextArg() {
				return d.ArgErr()
			}
			*flags[opt] = true
		case words[opt] != nil:
			err = oneArg(d, words[opt])
		case durations[opt] != nil:
			err = durationArg(d, durations[opt])
		case opt == "app":
			var app AppConfig
			app, err = unmarshalApp(d)
			h.Apps = append(h.Apps, app)
		case opt == "token_cache_size":
			h.TokenCacheBytes, err = sizeArg(d)
		case opt == "rate_limit":
			h.RateLimit, err = unmarshalRateLimit(d)
		case opt == "platform_concurrency":
			h.PlatformConcurrency, err = countArg(d, "a positive number of calls, such as 16")
		case opt == "refresh_grace":
			h.RefreshGrace, err = graceArg(d)
		case opt == "trusted_origins":
			origins := d.RemainingArgs()
			if len(origins) == 0 {
				return d.Err("trusted_origins needs at least one origin, such as https://shop.example.com")
			}
			h.TrustedOrigins = append(h.TrustedOrigins, origins...)
		default:
			return d.Errf("unrecognized wxauth option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalRateLimit reads `rate_limit <requests> <window>` or
// `rate_limit off`.
func unmarshalRateLimit(d *caddyfile.Dispenser) (*RateLimit, error) {
	args := d.RemainingArgs()
	if len(args) == 1 && args[0] == "off" {
		return &RateLimit{Off: true}, nil
	}
	if len(args) != 2 {
		return nil, d.Err("rate_limit takes a number of requests and a window, such as rate_limit 60 1m, or off")
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 {
		return nil, d.Errf("rate_limit %q: want a positive number of requests, such as 60", args[0])
	}
	window, err := caddy.ParseDuration(args[1])
	if err != nil || window <= 0 {
		return nil, d.Errf("rate_limit window %q: want a duration such as 1m", args[1])
	}
	if d.NextBlock(d.Nesting()) {
		return nil, d.Err("rate_limit takes no block")
	}
	return &RateLimit{Requests: n, Window: caddy.Duration(window)}, nil
}

func unmarshalApp(d *caddyfile.Dispenser) (AppConfig, error) {
	var app AppConfig
	if !d.NextArg() {
		return app, d.Err("app needs an appid: app <appid> { secret ... }")
	}
	app.AppID = d.Val()
	if d.NextArg() {
		return app, d.Errf("app %s: unexpected %q; put the secret inside the block: app %s { secret ... }", app.AppID, d.Val(), app.AppID)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch opt := d.Val(); opt {
		case "secret":
			err = oneArg(d, &app.Secret)
		case "api_base":
			err = oneArg(d, &app.APIBase)
		case "private_key":
			err = oneArg(d, &app.PrivateKey)
		case "alipay_public_key":
			err = oneArg(d, &app.AlipayPublicKey)
		case "platform":
			if err = oneArg(d, &app.Platform); err == nil {
				if _, perr := platform.ParseKind(app.Platform); perr != nil {
					err = d.Errf("app %s: %v", app.AppID, perr)
				}
			}
		case "scope":
			if err = oneArg(d, &app.Scope); err == nil && app.Scope != platform.ScopeBase && app.Scope != platform.ScopeUserInfo {
				err = d.Errf("app %s: scope %q: want snsapi_base or snsapi_userinfo", app.AppID, app.Scope)
			}
		case "scan_login":
			args := d.RemainingArgs()
			if len(args) > 2 {
				return app, d.Errf("app %s: scan_login takes at most a page and an env_version, such as scan_login pages/scan/index trial", app.AppID)
			}
			app.ScanLogin = &ScanLogin{}
			if len(args) > 0 {
				app.ScanLogin.Page = args[0]
			}
			if len(args) > 1 {
				app.ScanLogin.EnvVersion = args[1]
			}
			if err = app.ScanLogin.check(); err != nil {
				err = d.Errf("app %s: %v", app.AppID, err)
			}
		case "content_check":
			var v string
			if err = oneArg(d, &v); err == nil && v != "on" && v != "off" {
				err = d.Errf("app %s: content_check %q: want on or off", app.AppID, v)
			}
			on := v == "on"
			app.ContentCheck = &on
		default:
			err = d.Errf("app %s: unrecognized option %q", app.AppID, opt)
		}
		if err != nil {
			return app, err
		}
	}
	return app, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s %q: want a positive duration such as 2h or 30m", opt, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

// graceArg reads refresh_grace, which may be 0 (off).
func graceArg(d *caddyfile.Dispenser) (*caddy.Duration, error) {
	var s string
	if err := oneArg(d, &s); err != nil {
		return nil, err
	}
	grace, err := caddy.ParseDuration(s)
	if err != nil || grace < 0 {
		return nil, d.Errf("refresh_grace %q: want a duration such as 30s, or 0 to turn retries off", s)
	}
	g := caddy.Duration(grace)
	return &g, nil
}

func sizeArg(d *caddyfile.Dispenser) (int64, error) {
	var s string
	if err := oneArg(d, &s); err != nil {
		return 0, err
	}
	size, err := humanize.ParseBytes(s)
	if err != nil || size == 0 || size > 1<<40 {
		return 0, d.Errf("token_cache_size %q: want a size such as 64MiB", s)
	}
	return int64(size), nil
}

func countArg(d *caddyfile.Dispenser, want string) (int, error) {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, d.Errf("%s %q: want %s", opt, s, want)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
