package fakeplatform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
)

// Transport returns a RoundTripper that serves every request in-process
// with the engine. It never dials, whatever the request's host.
func (e *Engine) Transport() http.RoundTripper {
	return handlerTransport{handler: e}
}

// handlerTransport runs an http.Handler in place of a network round trip.
type handlerTransport struct {
	handler http.Handler
}

// errHandlerPanicked reports a panic in the fake, which would otherwise
// crash the whole process from the handler's goroutine.
var errHandlerPanicked = errors.New("sandbox: the fake platform handler panicked")

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil {
		// A RoundTripper must close the body, even on errors.
		defer req.Body.Close()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// The handler gets a server-side view of a copy: a RoundTripper must not
	// modify the request, and ServeMux records the matched pattern in it.
	serverReq := req.Clone(ctx)
	serverReq.RequestURI = req.URL.RequestURI()
	if serverReq.Host == "" {
		serverReq.Host = req.URL.Host
	}
	if serverReq.Body == nil {
		serverReq.Body = http.NoBody
	}
	serverReq.RemoteAddr = "sandbox:0"

	rec := httptest.NewRecorder()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("%w: %v", errHandlerPanicked, p)
			}
		}()
		t.handler.ServeHTTP(rec, serverReq)
		done <- nil
	}()

	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		// A handler that returned because the context ended did not
		// answer: report the context's end, as a network transport would,
		// rather than its empty recording.
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
	case <-ctx.Done():
		// The handler sees the same context and stops on its own; its
		// recorder is simply dropped.
		return nil, context.Cause(ctx)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}
