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
//	        platform wechat|qq|wechat-web|wechat-qr
//	        scope snsapi_base|snsapi_userinfo
//	        api_base <url>
//	        content_check on|off
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
	for d.NextBlock(0) {
		switch opt := d.Val(); opt {
		case "app":
			app, err := unmarshalApp(d)
			if err != nil {
				return err
			}
			h.Apps = append(h.Apps, app)
		case "sandbox":
			if err := noArgs(d); err != nil {
				return err
			}
			h.Sandbox = true
		case "optional":
			if err := noArgs(d); err != nil {
				return err
			}
			h.Optional = true
		case "forward_phone":
			if err := noArgs(d); err != nil {
				return err
			}
			h.ForwardPhone = true
		case "api_base":
			if err := oneArg(d, &h.APIBase); err != nil {
				return err
			}
		case "open_base":
			if err := oneArg(d, &h.OpenBase); err != nil {
				return err
			}
		case "endpoints":
			if err := oneArg(d, &h.Endpoints); err != nil {
				return err
			}
		case "avatar_base":
			if err := oneArg(d, &h.AvatarBase); err != nil {
				return err
			}
		case "signing_key":
			if err := oneArg(d, &h.SigningKey); err != nil {
				return err
			}
		case "access_ttl":
			if err := durationArg(d, &h.AccessTTL); err != nil {
				return err
			}
		case "refresh_ttl":
			if err := durationArg(d, &h.RefreshTTL); err != nil {
				return err
			}
		case "platform_timeout":
			if err := durationArg(d, &h.PlatformTimeout); err != nil {
				return err
			}
		case "revocation_sync":
			if err := durationArg(d, &h.RevocationSync); err != nil {
				return err
			}
		case "sweep_interval":
			if err := durationArg(d, &h.SweepInterval); err != nil {
				return err
			}
		case "token_cache_size":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			size, err := humanize.ParseBytes(s)
			if err != nil || size == 0 || size > 1<<40 {
				return d.Errf("token_cache_size %q: want a size such as 64MiB", s)
			}
			h.TokenCacheBytes = int64(size)
		case "rate_limit":
			rl, err := unmarshalRateLimit(d)
			if err != nil {
				return err
			}
			h.RateLimit = rl
		case "platform_concurrency":
			var s string
			if err := oneArg(d, &s); err != nil {
				return err
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				return d.Errf("platform_concurrency %q: want a positive number of calls, such as 16", s)
			}
			h.PlatformConcurrency = n
		case "refresh_grace":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			grace, err := caddy.ParseDuration(v)
			if err != nil || grace < 0 {
				return d.Errf("refresh_grace %q: want a duration such as 30s, or 0 to turn retries off", v)
			}
			g := caddy.Duration(grace)
			h.RefreshGrace = &g
		case "trusted_origins":
			origins := d.RemainingArgs()
			if len(origins) == 0 {
				return d.Err("trusted_origins needs at least one origin, such as https://shop.example.com")
			}
			h.TrustedOrigins = append(h.TrustedOrigins, origins...)
		default:
			return d.Errf("unrecognized wxauth option %q", opt)
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
		switch opt := d.Val(); opt {
		case "secret":
			if err := oneArg(d, &app.Secret); err != nil {
				return app, err
			}
		case "platform":
			if err := oneArg(d, &app.Platform); err != nil {
				return app, err
			}
			if _, err := platform.ParseKind(app.Platform); err != nil {
				return app, d.Errf("app %s: %v", app.AppID, err)
			}
		case "scope":
			if err := oneArg(d, &app.Scope); err != nil {
				return app, err
			}
			if app.Scope != "snsapi_base" && app.Scope != "snsapi_userinfo" {
				return app, d.Errf("app %s: scope %q: want snsapi_base or snsapi_userinfo", app.AppID, app.Scope)
			}
		case "api_base":
			if err := oneArg(d, &app.APIBase); err != nil {
				return app, err
			}
		case "content_check":
			var v string
			if err := oneArg(d, &v); err != nil {
				return app, err
			}
			if v != "on" && v != "off" {
				return app, d.Errf("app %s: content_check %q: want on or off", app.AppID, v)
			}
			on := v == "on"
			app.ContentCheck = &on
		default:
			return app, d.Errf("app %s: unrecognized option %q", app.AppID, opt)
		}
	}
	return app, nil
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
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

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
