package platform

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// DefaultTimeout bounds one platform call, its retry included, when
// Client.Timeout is zero.
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
	// APIBase overrides Kind.DefaultAPIBase() (test doubles, proxies). A
	// trailing slash is tolerated.
	APIBase string
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
}

// defaultHTTPClient does not follow redirects: the platform never redirects,
// and a redirect from a misconfigured api_base should fail loudly rather than
// send the query elsewhere.
var defaultHTTPClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
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

// request is one call to a platform API. Everything up to and including the
// errcode check is shared; each API method then only validates its own fields.
type request struct {
	api   string     // short name used in errors, e.g. "code2session"
	path  string     // e.g. "/sns/jscode2session"
	query url.Values // may hold the secret or an access token: never formatted
	// failures says what this API's own errcodes mean (e.g. 40029 for a login
	// code); it takes precedence over commonFailures.
	failures map[int]failure
	// noRetry is for billed calls (getuserphonenumber) that must never be sent
	// twice, not even after errcode -1.
	noRetry bool
}

// status is the part of every answer that says whether the call worked. A
// success may carry errcode 0 or no errcode at all.
type status struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// getJSON sends req as a GET and decodes a successful answer into out. It
// retries once after errcode -1 and returns a *Error for every failure.
func (c *Client) getJSON(ctx context.Context, app App, req request, out any) error {
	timeout := c.timeout()
	callCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	for attempt := 1; ; attempt++ {
		body, err := c.send(callCtx, ctx, timeout, app, req)
		if err != nil {
			return err
		}
		var st status
		if err := json.Unmarshal(body, &st); err != nil {
			return unavailable(req.api, "the platform answered something that is not the expected JSON; try again later")
		}
		if st.Errcode == -1 && attempt == 1 && !req.noRetry {
			if err := sleep(callCtx, c.retryDelay()); err != nil {
				return interrupted(req.api, ctx, timeout)
			}
			continue
		}
		if st.Errcode != 0 {
			return errcodeError(req.api, st.Errcode, st.Errmsg, req.failures, app.Secret)
		}
		if err := json.Unmarshal(body, out); err != nil {
			return unavailable(req.api, "the platform's answer has fields of the wrong type; try again later")
		}
		return nil
	}
}

// send performs one HTTP exchange and returns the body of a 2xx answer.
// callCtx carries the call's deadline; parent is the caller's context, used
// to tell a cancellation from our own timeout.
func (c *Client) send(callCtx, parent context.Context, timeout time.Duration, app App, req request) ([]byte, error) {
	base := app.apiBase()
	if base == "" {
		return nil, unavailable(req.api, fmt.Sprintf("the app's platform %q has no API base URL; the operator should fix the app's platform or api_base", string(app.Kind)))
	}
	// The URL is built and parsed here, and its errors are never formatted:
	// *url.Error prints the whole URL, secret included.
	httpReq, err := http.NewRequestWithContext(callCtx, http.MethodGet, base+req.path+"?"+req.query.Encode(), nil)
	if err != nil {
		return nil, unavailable(req.api, "the app's API base URL is not a valid URL; the operator should fix api_base")
	}
	if httpReq.URL.Scheme != "http" && httpReq.URL.Scheme != "https" {
		return nil, unavailable(req.api, "the app's API base URL is not an http or https URL; the operator should fix api_base")
	}
	httpReq.Header.Set("Accept", "application/json")

	resp, err := c.httpClient().Do(httpReq)
	if err != nil {
		if callCtx.Err() != nil {
			return nil, interrupted(req.api, parent, timeout)
		}
		return nil, unavailable(req.api, describeTransportError(err)+"; try again later")
	}
	defer resp.Body.Close()

	// Content-Type is not checked: WeChat often labels JSON as text/plain.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if callCtx.Err() != nil {
			return nil, interrupted(req.api, parent, timeout)
		}
		return nil, unavailable(req.api, "the connection broke while the platform was answering; try again later")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, unavailable(req.api, fmt.Sprintf("the platform answered HTTP %d; try again later", resp.StatusCode))
	}
	if len(body) > maxResponseBytes {
		return nil, unavailable(req.api, "the platform's answer is implausibly large; try again later")
	}
	return body, nil
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
