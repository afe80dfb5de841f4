package integration

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
	"github.com/wxauth/caddy-wxauth/internal/identity"
)

// rawExchange writes raw bytes to the gateway on one connection, exactly as
// given (Go's client would refuse or repair most of what these tests send),
// and reads every answer until the server closes the connection. It returns
// the status codes in order.
func rawExchange(t *testing.T, g *gateway, raw string) []int {
	t.Helper()
	conn := g.rawConn()
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	var statuses []int
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			// EOF: the server closed the connection, as every case asks
			// it to (Connection: close, or an error answer).
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the gateway neither answered nor closed the connection (answers so far %v)", statuses)
			}
			return statuses
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses = append(statuses, resp.StatusCode)
	}
}

// TestRequestSmugglingNeverReachesUpstreamWithForgedIdentity sends the
// classic request-smuggling and header-injection shapes to the gateway as
// raw bytes. The gate runs in the same process as the HTTP parser, so there
// is no second parser in front of it to disagree with; the risk is in what
// Go's parser accepts and in what Caddy's proxy then writes to the upstream.
// For every case, either the request is refused (400, 501), or every
// request the upstream receives carries exactly the verified identity: no
// identity header or trailer the client wrote, no request that was hidden
// inside another one, nothing unauthenticated.
func TestRequestSmugglingNeverReachesUpstreamWithForgedIdentity(t *testing.T) {
	g := startGateway(t, gatewayConfig{})
	s := g.login("smuggler")
	host := strings.TrimPrefix(g.URL, "http://")
	auth := "Authorization: Bearer " + s.AccessToken + "\r\n"

	// What a well-behaved request of this user carries upstream: the only
	// identity header values any case may produce.
	if r := g.get("/baseline", s.AccessToken); r.Status != http.StatusOK {
		t.Fatalf("baseline: %d %s", r.Status, r.Body)
	}
	verified := identityValues(g.Upstream.LastHeaders())
	if len(verified["X-Wx-Openid"]) != 1 || verified["X-Wx-Openid"][0] != s.OpenID {
		t.Fatalf("baseline identity %v", verified)
	}

	// forged are identity headers a client may write. X-WX-PHONE and
	// X-WX-NICKNAME are not among this user's verified headers, so only the
	// gate's stripping keeps them out (the verified X-WX-OPENID would
	// overwrite a forged one anyway, and Caddy itself drops every header
	// with an underscore unless told otherwise).
	forged := "X-WX-OPENID: forged\r\nX-WX-PHONE: forged\r\nx-wx-nickname: forged\r\n"
	// smuggled is a complete unauthenticated request with a forged identity,
	// to be hidden inside or after another request.
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n" + forged + "Connection: close\r\n\r\n"
	cl := func(body string) string { return "Content-Length: " + strconv.Itoa(len(body)) + "\r\n" }
	chunk := func(data string) string { return strconv.FormatInt(int64(len(data)), 16) + "\r\n" + data + "\r\n" }

	cases := []struct {
		name string
		raw  string
		// want are the statuses, in order, that the connection answers.
		want []int
		// paths are what the upstream must have received, in order: it
		// keeps the cases from passing by refusing everything.
		paths []string
		// trailer: the harmless X-Checksum trailer must arrive upstream, or
		// the case would pass because trailers are not forwarded at all.
		trailer bool
	}{{
		// CL.TE / TE.CL: Go obeys Transfer-Encoding and drops
		// Content-Length, so the body ends at the last chunk and the rest
		// is read as a second request, which meets the gate on its own.
		name: "Content-Length and Transfer-Encoding together",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Type: text/plain\r\n" +
			cl("0\r\n\r\n"+smuggled) + "Transfer-Encoding: chunked\r\n\r\n" + "0\r\n\r\n" + smuggled,
		want:  []int{200, 401},
		paths: []string{"/front"},
	}, {
		name: "Transfer-Encoding before Content-Length, smuggled request in the chunk",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\n" + cl("5") +
			"Connection: close\r\n\r\n" + chunk(smuggled) + "0\r\n\r\n",
		want:  []int{200},
		paths: []string{"/front"},
	}, {
		name: "two Content-Length values",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Content-Length: 0\r\n" + cl(smuggled) +
			"\r\n" + smuggled,
		want: []int{400},
	}, {
		name: "two Transfer-Encoding headers",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n" +
			cl(smuggled) + "\r\n" + smuggled,
		want: []int{501},
	}, {
		name: "Transfer-Encoding other than chunked",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: xchunked\r\n" +
			cl(smuggled) + "\r\n" + smuggled,
		want: []int{501},
	}, {
		// HTTP/1.0 has no chunked coding: Go frames by Content-Length, and
		// the proxy writes the body to the upstream with a length of its
		// own, so the hidden request stays a body.
		name: "HTTP/1.0 with Transfer-Encoding",
		raw: "POST /front HTTP/1.0\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\n" + cl(smuggled) +
			"\r\n" + smuggled,
		want:  []int{200},
		paths: []string{"/front"},
	}, {
		// obs-fold: Go joins a continuation line to the header before it,
		// so the forged line becomes part of X-Innocent's value, never a
		// header of its own.
		name: "obs-fold continuation carrying an identity header",
		raw: "GET /fold HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "X-Innocent: a\r\n X-WX-PHONE: forged\r\n" +
			"X-WX-PHONE: first\r\n\tforged\r\nConnection: close\r\n\r\n",
		want:  []int{200},
		paths: []string{"/fold"},
	}, {
		name:  "obs-fold on the first header line",
		raw:   "GET /fold HTTP/1.1\r\n X-WX-OPENID: forged\r\nHost: " + host + "\r\n" + auth + "\r\n",
		want:  []int{400},
		paths: nil,
	}, {
		name: "space before the colon",
		raw:  "GET /space HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "X-WX-OPENID : forged\r\nConnection: close\r\n\r\n",
		want: []int{400},
	}, {
		name: "tab before the colon",
		raw:  "GET /space HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "X-WX-OPENID\t: forged\r\nConnection: close\r\n\r\n",
		want: []int{400},
	}, {
		name: "bare CR inside a header value",
		raw:  "GET /cr HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "X-Innocent: a\rX-WX-OPENID: forged\r\nConnection: close\r\n\r\n",
		want: []int{400},
	}, {
		// Bare LF ends a line for Go: the forged line is a header of its
		// own, and the gate strips it like any other.
		name:  "bare LF line endings",
		raw:   "GET /lf HTTP/1.1\nHost: " + host + "\n" + strings.TrimSuffix(auth, "\r\n") + "\nX-WX-PHONE: forged\nConnection: close\n\n",
		want:  []int{200},
		paths: []string{"/lf"},
	}, {
		// Pipelining: every request on a connection is gated on its own;
		// the token of the first does not carry over to the second.
		name:  "pipelined request after an authenticated one",
		raw:   "GET /first HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\n" + smuggled,
		want:  []int{200, 401},
		paths: []string{"/first"},
	}, {
		name: "pipelined authenticated request with forged headers",
		raw: "GET /first HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "\r\n" +
			"GET /second HTTP/1.1\r\nHost: " + host + "\r\n" + auth + forged + "Connection: close\r\n\r\n",
		want:  []int{200, 200},
		paths: []string{"/first", "/second"},
	}, {
		// A request inside a chunked body is only data: the proxy re-frames
		// the body for the upstream, which reads it as the body.
		name: "chunked body holding a request",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			chunk("x") + chunk(smuggled) + "0\r\n\r\n",
		want:  []int{200},
		paths: []string{"/front"},
	}, {
		// Trailers are header fields too, and Caddy forwards request
		// trailers to the upstream; the gate strips identity names there
		// as well.
		name: "identity headers in chunked trailers",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\n" +
			"Trailer: X-WX-OPENID, X_WX_UNIONID, X-Checksum\r\nConnection: close\r\n\r\n" +
			chunk("abc") + "0\r\nX-WX-OPENID: forged\r\nX_WX_UNIONID: forged\r\nX-Wx-Phone: forged\r\nX-Checksum: kept\r\n\r\n",
		want:    []int{200},
		paths:   []string{"/front"},
		trailer: true,
	}, {
		// net/http keeps trailers the client did not announce on its own
		// copy of the request, so none reach the upstream, forged or not.
		name: "identity headers in trailers that were not announced",
		raw: "POST /front HTTP/1.1\r\nHost: " + host + "\r\n" + auth + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			chunk("abc") + "0\r\nX-WX-OPENID: forged\r\nX-Checksum: kept\r\n\r\n",
		want:  []int{200},
		paths: []string{"/front"},
	}}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(g.Upstream.Requests())
			got := rawExchange(t, g, tc.raw)
			if !slices.Equal(got, tc.want) {
				t.Errorf("answers %v, want %v", got, tc.want)
			}
			seen := g.Upstream.Requests()[before:]
			var paths []string
			for _, r := range seen {
				paths = append(paths, r.Path)
				checkUpstreamIdentity(t, r, verified)
			}
			if !slices.Equal(paths, tc.paths) {
				t.Errorf("the upstream received %v, want %v", paths, tc.paths)
			}
			if tc.trailer && (len(seen) == 0 || seen[0].Trailer.Get("X-Checksum") != "kept") {
				t.Errorf("the harmless trailer did not reach the upstream (%v); the case proves nothing", seen)
			}
		})
	}
}

// checkUpstreamIdentity fails unless the request the upstream received
// carries exactly the verified identity headers, no identity trailer, no
// credential, and nothing that was hidden in another request.
func checkUpstreamIdentity(t *testing.T, r e2etest.Seen, verified http.Header) {
	t.Helper()
	if r.Path == "/smuggled" {
		t.Errorf("a smuggled request reached the upstream: %s %s %v", r.Method, r.Path, r.Header)
	}
	got := identityValues(r.Header)
	for name, vals := range got {
		if !slices.Equal(vals, verified[name]) {
			t.Errorf("%s %s: upstream got %s = %q, the verified value is %q", r.Method, r.Path, name, vals, verified[name])
		}
	}
	for name := range verified {
		if len(got[name]) == 0 {
			t.Errorf("%s %s: verified %s missing upstream", r.Method, r.Path, name)
		}
	}
	for name, vals := range r.Trailer {
		if identity.IsIdentityHeader(name) {
			t.Errorf("%s %s: an identity trailer reached the upstream: %s = %q", r.Method, r.Path, name, vals)
		}
	}
	if r.Header.Get("Authorization") != "" {
		t.Errorf("%s %s: the token reached the upstream", r.Method, r.Path)
	}
}
