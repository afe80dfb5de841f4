// Command fakeplatform is the platform of the login-throughput run of
// bench/gate.sh: the repository's fake platform engine
// (internal/fakeplatform, stateful, with one registered app) as a process
// of its own, so that it never shares the gateway's CPU budget.
//
//	GET  /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code
//	     waits -latency (20ms), then answers
//	     {"openid": ..., "session_key": <base64 of 16 random bytes>, "unionid": ...}
//	     with an openid derived from the code, so every code is its own user.
//	     Like the real platform, a code is good once: a second exchange of
//	     the same code answers errcode 40163. A wrong appid or secret answers
//	     errcode 40013 or 40125.
//	GET  /stats  the counters, as JSON (see stats); /stats?format=text gives
//	             the same as key=value lines, for shell scripts
//	POST /reset  zeroes the counters
//
// The counters say whether the gateway asked exactly once per code. The
// engine's other APIs answer too, as in the tests.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/fakeplatform"
)

type server struct {
	platform  *fakeplatform.Engine
	conns     atomic.Int64
	connsBase atomic.Int64
}

// stats is /stats's answer: the engine's code2session counters and the TCP
// connections accepted.
type stats struct {
	fakeplatform.LoginStats
	Connections int64 `json:"connections"` // TCP connections accepted
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	appid := flag.String("appid", "wxbench0000000002", "the one app it knows")
	secretEnv := flag.String("secret-env", "WXBENCH_SECRET", "environment variable holding the app's secret")
	latency := flag.Duration("latency", 20*time.Millisecond, "delay before each answer")
	flag.Parse()

	secret := os.Getenv(*secretEnv)
	if secret == "" {
		log.Fatalf("$%s is empty", *secretEnv)
	}
	s := newServer(*appid, secret, *latency)
	srv := &http.Server{Addr: *addr, Handler: s.handler(), ConnState: s.connState}
	log.Printf("fakeplatform: app %s, latency %s, on %s", *appid, *latency, *addr)
	log.Fatal(srv.ListenAndServe())
}

// newServer is a stateful engine that knows one app and answers after
// latency.
func newServer(appid, secret string, latency time.Duration) *server {
	s := &server{platform: fakeplatform.New(fakeplatform.Options{Stateful: true})}
	s.platform.AddApp(appid, secret)
	s.platform.SetDelay(latency)
	return s
}

// handler serves /stats and /reset, and the engine everything else.
func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("POST /reset", s.reset)
	mux.Handle("/", s.platform)
	return mux
}

// connState counts the TCP connections accepted.
func (s *server) connState(_ net.Conn, st http.ConnState) {
	if st == http.StateNew {
		s.conns.Add(1)
	}
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	st := stats{LoginStats: s.platform.LoginStats(), Connections: s.conns.Load() - s.connsBase.Load()}
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "calls=%d\ndistinct_codes=%d\nmax_calls_per_code=%d\ncodes_repeated=%d\nrejected=%d\nconnections=%d\n",
			st.Calls, st.DistinctCodes, st.MaxCallsPerCode, st.CodesRepeated, st.Rejected, st.Connections)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

func (s *server) reset(w http.ResponseWriter, r *http.Request) {
	s.platform.ResetCounters()
	s.connsBase.Store(s.conns.Load())
	w.WriteHeader(http.StatusNoContent)
}
