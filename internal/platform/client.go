package platform

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTimeout bounds one platform call, its retry included, when
// Client.Timeout is zero. (A Service call that must fetch an access_token
// first makes two calls, each with its own bound.)
const DefaultTimeout = 5 * time.Second

// defaultRetryDelay is the pause before retrying an errcode -1 ("system busy").
const defaultRetryDelay = 200 * time.Millisecond

// maxResponseBytes bounds how much of an answer is read. Real answers are a
// few hundred bytes; anything near the limit is garbage anyway.
const maxResponseBytes = 1 << 20

// App is one mini program (or web app) registered on a platform.
type App struct {
	AppID  string
	Secret string
	Kind   Kind
	// APIBase overrides Kind.DefaultAPIBase() (test doubles, proxies), and
	// the platform's other hosts with it. A trailing slash is tolerated.
	APIBase string

	// PrivateKey is the app's own RSA private key: Alipay apps sign every
	// request with it; Douyin apps decrypt phone numbers with it (nil:
	// the app gets no phone numbers). Never formatted.
	PrivateKey *rsa.PrivateKey
	// PlatformPublicKey is Alipay's public key for the app: every answer's
	// signature is checked with it.
	PlatformPublicKey *rsa.PublicKey
}

// apiBase is the base URL calls go to, without a trailing slash.
func (a App) apiBase() string {
	base := a.APIBase
	if base == "" {
		base = a.Kind.DefaultAPIBase()
	}
	return strings.TrimRight(base, "/")
}

// Client calls the platform APIs. The zero Client is ready to use and safe for
// concurrent use.
type Client struct {
	// HTTP sends the requests; nil means a default client that does not
	// follow redirects. The per-call Timeout applies either way.
	HTTP *http.Client
	// Timeout bounds one platform call, its retry included; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// RetryDelay is the pause before the single retry on errcode -1; 0 means
	// 200ms.
	RetryDelay time.Duration
	// MaxConcurrentPerApp bounds the calls in flight to the platform for one
	// app; 0 means no bound. A flood of logins (or of anything else that
	// reaches the platform) then waits for a free slot, for up to half the
	// call's timeout (so that the call itself still has time), instead of
	// spending the app's daily quota as fast as it arrives; a call that
	// finds no slot in time fails as RateLimited.
	MaxConcurrentPerApp int
	// Observe, when set, is told of every exchange with the platform (a
	// retry is a second one): the metrics of calls and their latency.
	Observe func(Exchange)

	slots sync.Map // appid → chan struct{} of MaxConcurrentPerApp slots
}

// Exchange is one HTTP exchange with the platform, as Client.Observe sees it.
type Exchange struct {
	API   string // e.g. "code2session"
	AppID string
	// Outcome is the platform's errcode ("0" for a success; Alipay's
	// sub_code, Baidu's OAuth error) or, when the platform gave none:
	// "timeout", "cancelled", "transport" (no connection, or it broke),
	// "http_status" (not a 2xx), "bad_answer" (too large, not JSON, or
	// fields of the wrong type), "bad_signature" (an Alipay answer whose
	// sign is missing or does not verify).
	Outcome  string
	Duration time.Duration
}

// defaultHTTPClient does not follow redirects: the platform never redirects,
// and a redirect from a misconfigured api_base should fail loudly rather than
// send the query elsewhere.
//
// Its transport keeps many idle connections per host: every login of every
// app goes to the same one or two hosts, and Go's default of 2 made most
// calls under load open a new connection (a new TLS handshake with the
// real platform).
var defaultHTTPClient = &http.Client{
	Transport:     platformTransport(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// maxIdleConnsPerHost bounds the kept-alive connections to one platform
// host: enough for a node's concurrent logins.
const maxIdleConnsPerHost = 64

func platformTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxIdleConnsPerHost
	t.MaxIdleConns = 4 * maxIdleConnsPerHost
	return t
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTPClient
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

func (c *Client) retryDelay() time.Duration {
	if c.RetryDelay > 0 {
		return c.RetryDelay
	}
	return defaultRetryDelay
}

// call sends req and decodes a successful answer into out. It retries once
// after errcode -1 (unless req.noRetry) and returns a *Error for every
// failure. Every platform API goes through here.
func (c *Client) call(ctx context.Context, app App, req request, out any) error {
	timeout := c.timeout()
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	release, err := c.acquire(callCtx, ctx, app, req.api)
	if err != nil {
		return err
	}
	defer release()

	read := req.read
	if read == nil {
		read = readErrcode
	}
	for attempt := 1; ; attempt++ {
		start := time.Now()
		body, outcome, err := c.send(callCtx, ctx, timeout, app, req)
		if img, ok := out.(*Image); ok && err == nil && req.image && imageType(body) != "" {
			c.observe(req.api, app.AppID, "0", time.Since(start))
			img.ContentType, img.Data = imageType(body), body
			return nil
		}
		var v verdict
		if err == nil {
			v = read(req, app, body)
			if outcome = v.outcome; v.err != nil {
				err = v.err
			}
		}
		c.observe(req.api, app.AppID, outcome, time.Since(start))
		if v.retry && attempt == 1 && !req.noRetry {
			if err := sleep(callCtx, c.retryDelay()); err != nil {
				return interrupted(req.api, ctx, timeout)
			}
			continue
		}
		if err != nil {
			return err
		}
		if req.image {
			return unavailable(req.api, "the platform answered JSON without an error and without the image; try again later")
		}
		if err := json.Unmarshal(v.payload, out); err != nil {
			return unavailable(req.api, "the platform's answer has fields of the wrong type; try again later")
		}
		return nil
	}
}

func (c *Client) observe(api, appid, outcome string, d time.Duration) {
	if c.Observe != nil {
		c.Observe(Exchange{API: api, AppID: appid, Outcome: outcome, Duration: d})
	}
}

// acquire takes one of app's MaxConcurrentPerApp slots, waiting for one
// for up to half the call's timeout, and returns the func that gives it
// back.
func (c *Client) acquire(callCtx, parent context.Context, app App, api string) (release func(), err error) {
	if c.MaxConcurrentPerApp <= 0 {
		return func() {}, nil
	}
	v, ok := c.slots.Load(app.AppID)
	if !ok {
		v, _ = c.slots.LoadOrStore(app.AppID, make(chan struct{}, c.MaxConcurrentPerApp))
	}
	slots := v.(chan struct{})
	select {
	case slots <- struct{}{}: // the common case: no timer
		return func() { <-slots }, nil
	default:
	}
	waitCtx, cancel := context.WithTimeout(callCtx, c.timeout()/2)
	defer cancel()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-waitCtx.Done():
		if parent.Err() != nil {
			return nil, interrupted(api, parent, c.timeout())
		}
		return nil, &Error{Code: RateLimited, API: api, RetryAfter: time.Second,
			Message: "the gateway is already making as many calls to the platform for this app as it allows; try again in a moment"}
	}
}

// send performs one HTTP exchange and returns the body of a 2xx answer.
// callCtx carries the call's deadline; parent is the caller's context, used
// to tell a cancellation from our own timeout.
func (c *Client) send(callCtx, parent context.Context, timeout time.Duration, app App, req request) (answer []byte, outcome string, err error) {
	base := app.baseFor(req.host)
	if base == "" {
		return nil, "transport", unavailable(req.api, fmt.Sprintf("the app's platform %q has no API base URL; the operator should fix the app's platform or api_base", string(app.Kind)))
	}
	query := make(url.Values, len(req.query)+1)
	for k, v := range req.query {
		query[k] = v
	}
	body := req.body
	switch {
	case req.accessToken == "":
	case req.tokenHeader != "":
	case req.tokenField != "":
		body = withTokenField(body, req.tokenField, req.accessToken)
	default:
		query.Set("access_token", req.accessToken)
	}
	target := base + req.path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	method := req.method
	if method == "" {
		method = http.MethodGet
	}
	var reqBody io.Reader
	if body != nil {
		// A fresh reader per attempt: a retry sends the same bytes again.
		reqBody = bytes.NewReader(body)
	}
	// The URL is built and parsed here, and its errors are never formatted:
	// *url.Error prints the whole URL, secret or access_token included.
	httpReq, err := http.NewRequestWithContext(callCtx, method, target, reqBody)
	if err != nil {
		return nil, "transport", unavailable(req.api, "the app's API base URL is not a valid URL; the operator should fix api_base")
	}
	if httpReq.URL.Scheme != "http" && httpReq.URL.Scheme != "https" {
		return nil, "transport", unavailable(req.api, "the app's API base URL is not an http or https URL; the operator should fix api_base")
	}
	httpReq.Header.Set("Accept", "application/json")
	if req.image {
		httpReq.Header.Set("Accept", "image/*, application/json")
	}
	if req.contentType != "" {
		httpReq.Header.Set("Content-Type", req.contentType)
	}
	if req.tokenHeader != "" && req.accessToken != "" {
		httpReq.Header.Set(req.tokenHeader, req.accessToken)
	}

	resp, err := c.httpClient().Do(httpReq)
	if err != nil {
		if callCtx.Err() != nil {
			return nil, interruptedOutcome(parent), interrupted(req.api, parent, timeout)
		}
		return nil, "transport", unavailable(req.api, describeTransportError(err)+"; try again later")
	}
	defer resp.Body.Close()

	// Content-Type is not checked: WeChat often labels JSON as text/plain.
	answer, err = io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if callCtx.Err() != nil {
			return nil, interruptedOutcome(parent), interrupted(req.api, parent, timeout)
		}
		return nil, "transport", unavailable(req.api, "the connection broke while the platform was answering; try again later")
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		// The platforms that document no rate-limit code of their own
		// (Douyin, Alipay, Baidu) say it this way at their gateways.
		// Errcode 429 tells it from the gateway's own backoffs (0).
		return nil, "http_status", &Error{Code: RateLimited, API: req.api, Errcode: http.StatusTooManyRequests, RetryAfter: retryAfter(resp.Header),
			Message: "the platform is limiting how often this call can be made; wait a minute and try again"}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, "http_status", unavailable(req.api, fmt.Sprintf("the platform answered HTTP %d; try again later", resp.StatusCode))
	}
	if len(answer) > maxResponseBytes {
		return nil, "bad_answer", unavailable(req.api, "the platform's answer is implausibly large; try again later")
	}
	return answer, "", nil
}

// retryAfter reads an HTTP 429's Retry-After (seconds), bounded to an
// hour; rateLimitRetryAfter when there is none.
func retryAfter(h http.Header) time.Duration {
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil && s > 0 {
		return min(time.Duration(s)*time.Second, time.Hour)
	}
	return rateLimitRetryAfter
}

// withTokenField returns the JSON object body with the field name set to
// token, for the APIs that take the access_token in the body (Douyin's
// image check). body is an object this package encoded.
func withTokenField(body []byte, name, token string) []byte {
	field, _ := json.Marshal(map[string]string{name: token}) // plain strings: cannot fail
	rest := bytes.TrimSpace(body)
	if len(rest) < 2 || rest[0] != '{' {
		return field
	}
	if rest = bytes.TrimSpace(rest[1:]); len(rest) == 1 { // "}": an empty object
		return field
	}
	out := append(field[:len(field)-1:len(field)-1], ',')
	return append(out, rest...)
}

// interruptedOutcome is Exchange.Outcome for a call whose context ended.
func interruptedOutcome(parent context.Context) string {
	if errors.Is(parent.Err(), context.Canceled) {
		return "cancelled"
	}
	return "timeout"
}

// interrupted is the error for a call whose context ended: the caller's own
// context (cancelled or past its deadline) or the call's timeout.
func interrupted(api string, parent context.Context, timeout time.Duration) *Error {
	switch {
	case errors.Is(parent.Err(), context.Canceled):
		return unavailable(api, "the request was cancelled before the platform answered; try again")
	case parent.Err() != nil:
		return unavailable(api, "the platform did not answer in time; try again")
	}
	return unavailable(api, fmt.Sprintf("the platform did not answer within %s; try again", timeout))
}

// describeTransportError names what went wrong on the wire from parts of err
// known to be safe. err itself is never formatted: it is a *url.Error that
// holds the request URL, and a custom RoundTripper may say anything.
func describeTransportError(err error) string {
	var (
		dnsErr  *net.DNSError
		opErr   *net.OpError
		certErr *tls.CertificateVerificationError
		urlErr  *url.Error
	)
	switch {
	case errors.As(err, &urlErr) && urlErr.Timeout():
		return "the platform did not answer in time"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("could not resolve the platform's host name %q", dnsErr.Name)
	case errors.As(err, &certErr):
		return "the platform's TLS certificate did not verify"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the platform refused the connection"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "could not connect to the platform"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the platform closed the connection without answering"
	}
	return "the connection to the platform failed"
}

// sleep waits d or until ctx ends, whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
