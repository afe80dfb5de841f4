package fakeplatform

import "net/http/httptest"

// TB is the part of testing.TB that NewServer uses; a *testing.T,
// *testing.B or testing.TB will do. (The package does not import testing:
// the plugin's sandbox mode links it into Caddy.)
type TB interface {
	Helper()
	Cleanup(func())
}

// Server is a fake platform for tests: an engine with Options.Stateful and
// Options.Scripted on an httptest server on 127.0.0.1. Its methods, the
// Engine's included, are safe for concurrent use.
type Server struct {
	*Engine
	// URL is the base to configure (App.APIBase, api_base, and open_base
	// for its authorize pages), without a trailing slash.
	URL string

	srv *httptest.Server
}

// NewServer starts a fake platform and stops it when the test ends.
func NewServer(t TB) *Server {
	t.Helper()
	e := New(Options{Stateful: true, Scripted: true})
	s := &Server{Engine: e, srv: httptest.NewServer(e)}
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close stops the server. Requests still waiting (SetDelay, "slow") return
// at once without an answer. Close may be called more than once.
func (s *Server) Close() {
	s.Engine.Close()
	s.srv.Close()
}
