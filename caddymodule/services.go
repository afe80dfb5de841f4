package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxauth/caddy-wxauth/internal/avatar"
	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
	"github.com/wxauth/caddy-wxauth/internal/gate"
	"github.com/wxauth/caddy-wxauth/internal/handoff"
	"github.com/wxauth/caddy-wxauth/internal/httpapi"
	"github.com/wxauth/caddy-wxauth/internal/login"
	"github.com/wxauth/caddy-wxauth/internal/metrics"
	"github.com/wxauth/caddy-wxauth/internal/node"
	"github.com/wxauth/caddy-wxauth/internal/platform"
	"github.com/wxauth/caddy-wxauth/internal/profile"
	"github.com/wxauth/caddy-wxauth/internal/ratelimit"
	"github.com/wxauth/caddy-wxauth/internal/scanlogin"
	"github.com/wxauth/caddy-wxauth/internal/store"
	"github.com/wxauth/caddy-wxauth/internal/token"
	"github.com/wxauth/caddy-wxauth/internal/weblogin"
)

// build makes the services of a checked configuration and the API that
// serves them: the domain services, on the node's pooled parts (the
// platform client, the view of sessions, the rate limiter). It returns
// how to let go of what it took from the pools, newest first; on an error
// it lets go of it itself.
func build(ctx caddy.Context, h *Handler) (api *httpapi.API, held []func() error, err error) {
	defer func() {
		if err != nil {
			release(held)
			held = nil
		}
	}()
	logger, m := ctx.Logger(), metrics.Get()
	if err := m.Register(ctx.GetMetricsRegistry()); err != nil {
		return nil, held, fmt.Errorf("registering metrics: %w", err)
	}
	apps, err := resolveApps(h, caddy.NewReplacer())
	if err != nil {
		return nil, held, err
	}
	codec, err := loadCodec(ctx, h.SigningKey)
	if err != nil {
		return nil, held, err
	}
	if h.Sandbox {
		// Said at start, where a newcomer running the demo looks first.
		logger.Warn("sandbox mode: logins are answered by a built-in fake platform; never use it in production",
			zap.String("try", "curl -X POST -H 'Content-Type: application/json' -d '{\"code\":\"alice\"}' http://<this site>"+
				h.prefix()+"/login (with Caddyfile.example: http://localhost:8080"+h.prefix()+"/login; then see docs/tour.md)"))
	}
	for _, note := range platformNotes(h) {
		logger.Info(note)
	}
	records := store.NewStore(ctx.Storage())
	ps, key := platformService(h, m)
	held = append(held, releaser(platformPool, key))
	sessions, key, err := sessionsOnNode(ctx, h, codec, records, logger, m)
	if err != nil {
		return nil, held, err
	}
	held = append(held, releaser(sessionPool, key))
	// The node's background work uses this configuration's storage until
	// it is cleaned up (a reload closes the old storage's connections).
	detach := sessions.Use(records)
	held = append(held, func() error { detach(); return nil })
	var limiter *ratelimit.Limiter
	if h.RateLimit == nil || !h.RateLimit.Off {
		limiter, key = rateLimiter(h)
		held = append(held, releaser(limiterPool, key))
	}

	c := httpapi.Config{
		Prefix: h.prefix(), Sandbox: h.Sandbox, Optional: h.Optional, OpenBase: h.OpenBase, AvatarBase: h.AvatarBase,
		TrustedOrigins: h.TrustedOrigins, Logger: logger, Metrics: m, Apps: apps, Codec: codec, Store: records,
		Avatars: avatar.NewStore(records.Storage()), Limiter: limiter,
	}
	c.Gate = &gate.Gate{Codec: codec, Cache: sessions.Cache, Revocations: sessions.Revocations,
		Known: apps.Known, ForwardPhone: h.ForwardPhone, Metrics: m, Prepare: prepareVerified}
	c.Logins = &login.Service{Exchanger: ps.Client, Store: records, Codec: codec,
		AccessTTL: h.accessTTL(), RefreshTTL: h.refreshTTL(), RefreshGrace: h.refreshGrace(),
		Apps: apps.Lookup, Flights: sessions.Flights, Revocations: sessions.Revocations}
	c.Profiles = &profile.Service{Users: records, Avatars: c.Avatars, Checker: ps, Phones: ps}
	if limiter != nil {
		c.Profiles.Backoff = limiter
	}
	c.Web = &weblogin.Flow{Apps: apps.Web(), Scopes: apps.WebScopes(), Lookup: apps.Lookup, Store: records,
		Platform: ps.Client, Logins: c.Logins, Profiles: c.Profiles, Sandbox: h.Sandbox}
	c.Handoff = &handoff.Service{Store: records, Logins: c.Logins, Apps: apps.Lookup}
	c.Scan = &scanlogin.Flow{Apps: scanApps(h, apps), Lookup: apps.Lookup, Store: records, Codes: ps, Logins: c.Logins}
	c.Shutdown = serverShutdown(ctx)
	api, err = httpapi.New(c)
	return api, held, err
}

// serverShutdown is closed when the server this handler is provisioned in
// begins to shut down: a reload or a stop. Long polls (the scan login's
// wait) answer then, so that Caddy, which waits for every request to end
// before the old config is gone, is not kept waiting for them. Outside an
// HTTP server (not seen in practice) it is nil: never closed.
func serverShutdown(ctx caddy.Context) <-chan struct{} {
	srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok || srv == nil {
		return nil
	}
	ch := make(chan struct{})
	var once sync.Once
	srv.RegisterOnShutdown(func() { once.Do(func() { close(ch) }) })
	return ch
}

// loadCodec is the token codec: HS256 with signing_key, else Ed25519 with
// the key kept in storage (created by the first node that needs it).
func loadCodec(ctx caddy.Context, signingKey string) (*token.Codec, error) {
	if signingKey != "" {
		codec, err := token.NewHS256Codec([]byte(caddy.NewReplacer().ReplaceKnown(signingKey, "")))
		if err != nil {
			return nil, fmt.Errorf("signing_key: %w", err)
		}
		return codec, nil
	}
	key, err := token.LoadOrCreateEd25519(ctx, ctx.Storage())
	if err != nil {
		return nil, fmt.Errorf("loading the token signing key from Caddy storage: %w", err)
	}
	return token.NewEd25519Codec(key), nil
}

// platformService is the node's platform client and access-token cache for
// these client settings: one per node, shared by every handler and reload,
// so the bound on concurrent calls per app holds for all of them. The
// Service itself keys its tokens by app and secret.
func platformService(h *Handler, m *metrics.Metrics) (*platform.Service, string) {
	timeout, concurrency := time.Duration(h.PlatformTimeout), h.platformConcurrency()
	key := fmt.Sprintf("wxauth-platform|%t|%s|%d", h.Sandbox, timeout, concurrency)
	v, _, _ := platformPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := &platform.Client{
			Timeout:             timeout,
			MaxConcurrentPerApp: concurrency,
			Observe:             func(x platform.Exchange) { m.PlatformExchange(x.API, x.Outcome, x.Duration) },
		}
		if h.Sandbox {
			client.HTTP = &http.Client{Transport: fakeplatform.Sandbox().Transport()}
		}
		return pooledPlatform{&platform.Service{Client: client}}, nil
	})
	return v.(pooledPlatform).Service, key
}

// sessionsOnNode is this node's view of sessions for these settings.
func sessionsOnNode(ctx caddy.Context, h *Handler, codec *token.Codec, records *store.Store, logger *zap.Logger, m *metrics.Metrics) (*node.Node, string, error) {
	settings := sessionSettings{
		storageID:    storageID(ctx.Storage()),
		keyID:        codec.KeyID(),
		forwardPhone: h.ForwardPhone,
		Settings: node.Settings{
			CacheBytes:     h.tokenCacheBytes(),
			RevocationSync: durationOr(h.RevocationSync, DefaultRevocationSync),
			SweepInterval:  durationOr(h.SweepInterval, DefaultSweepInterval),
			UserIdle:       h.refreshTTL(),
		},
	}
	key := settings.key()
	v, loaded, err := sessionPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		n, err := node.Start(settings.Settings, records, logger, m)
		return pooledNode{n}, err
	})
	if err != nil {
		return nil, key, err
	}
	if loaded {
		logger.Debug("reusing the in-memory state of the previous config (token cache, revocations)")
	}
	return v.(pooledNode).Node, key, nil
}

// rateLimiter is the node's per-client-IP limiter for these settings.
func rateLimiter(h *Handler) (*ratelimit.Limiter, string) {
	requests, window := h.rateLimit()
	key := fmt.Sprintf("wxauth-limit|%d|%s", requests, window)
	v, _, _ := limiterPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		return newLimiter(requests, window), nil
	})
	return v.(*limiter).Limiter, key
}

// releaser lets go of a configuration's use of a pool's entry; the last
// configuration to let go of one stops its background work.
func releaser(pool *caddy.UsagePool, key string) func() error {
	return func() error {
		_, err := pool.Delete(key)
		return err
	}
}

// release lets go of what build took, the last taken first.
func release(held []func() error) error {
	var errs []error
	for i := len(held) - 1; i >= 0; i-- {
		errs = append(errs, held[i]())
	}
	return errors.Join(errs...)
}

// resolveApps turns the apps' configuration into what the platform client
// needs, replacing placeholders in the secrets.
func resolveApps(h *Handler, repl *caddy.Replacer) (*httpapi.Apps, error) {
	list := make([]httpapi.App, 0, len(h.Apps))
	for _, ac := range h.Apps {
		kind, err := ac.kind()
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", ac.AppID, err)
		}
		app := httpapi.App{App: platform.App{AppID: ac.AppID, Kind: kind, APIBase: ac.APIBase},
			NoContentCheck: ac.ContentCheck != nil && !*ac.ContentCheck}
		if kind.IsWeb() {
			app.Scope = ac.webScope()
		}
		if app.APIBase == "" {
			app.APIBase = h.APIBase
		}
		if !h.Sandbox && kind != platform.Alipay {
			if app.Secret = repl.ReplaceKnown(ac.Secret, ""); app.Secret == "" {
				return nil, fmt.Errorf("app %s has no secret%s; set `secret` (e.g. secret {env.WX_SECRET}) or use `sandbox` for development", ac.AppID, unresolved(ac.Secret))
			}
		}
		if err := resolveKeys(h.Sandbox, ac, kind, repl, &app.App); err != nil {
			return nil, fmt.Errorf("app %s: %w", ac.AppID, err)
		}
		list = append(list, app)
	}
	return httpapi.NewApps(list), nil
}

// platformNotes are what the startup log says about apps whose platform
// lacks something the gateway offers elsewhere.
func platformNotes(h *Handler) []string {
	var notes []string
	for _, ac := range h.Apps {
		kind, _ := ac.kind()
		checks := ac.ContentCheck == nil || *ac.ContentCheck
		if checks && !kind.ChecksImages() {
			notes = append(notes, fmt.Sprintf("app %s: %s offers no image content check for mini programs, so uploaded avatars "+
				"are stored unchecked (content_check covers nicknames only)", ac.AppID, kind.Name()))
		}
		switch {
		case kind == platform.Alipay || kind == platform.Baidu:
			notes = append(notes, fmt.Sprintf("app %s: %s has no server API that trades a phone code for the number, "+
				"so POST %s/phone refuses its users", ac.AppID, kind.Name(), h.prefix()))
		case kind == platform.Douyin && ac.PrivateKey == "" && !h.Sandbox:
			notes = append(notes, fmt.Sprintf("app %s: no private_key, so POST %s/phone refuses its users "+
				"(Douyin encrypts phone numbers with the app's public key)", ac.AppID, h.prefix()))
		}
	}
	return notes
}

// scanApps are the apps with scan_login, in configuration order.
func scanApps(h *Handler, apps *httpapi.Apps) []scanlogin.App {
	var list []scanlogin.App
	for _, ac := range h.Apps {
		if ac.ScanLogin == nil {
			continue
		}
		app, _ := apps.Lookup(ac.AppID)
		list = append(list, scanlogin.App{App: app, Page: ac.ScanLogin.Page, EnvVersion: ac.ScanLogin.EnvVersion})
	}
	return list
}
