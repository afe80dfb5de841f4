// Command fakeplatform is a stand-in for WeChat's code2Session API for the
// login-throughput run of bench/gate.sh. It is a process of its own (the
// repository's platformtest is an httptest server inside the tests), small
// and lock-cheap so that it never is the bottleneck.
//
//	GET  /sns/jscode2session?appid=&secret=&js_code=&grant_type=authorization_code
//	     waits -latency (20ms), then answers
//	     {"openid": ..., "session_key": <base64 of 16 random bytes>, "unionid": ...}
//	     with an openid derived from the code, so every code is its own user.
//	     Like the real platform, a code is good once: a second exchange of
//	     the same code answers errcode 40163. A wrong appid or secret answers
//	     errcode 40125.
//	GET  /stats  the counters, as JSON (see stats); /stats?format=text gives
//	             the same as key=value lines, for shell scripts
//	POST /reset  zeroes the counters
//
// The counters say whether the gateway asked exactly once per code.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type server struct {
	appid, secret string
	latency       time.Duration

	mu        sync.Mutex
	perCode   map[string]int
	calls     int
	rejected  int // wrong appid/secret, missing code
	conns     atomic.Int64
	connsBase int64
}

// stats is /stats's answer.
type stats struct {
	Calls           int   `json:"calls"`          // code2session requests
	DistinctCodes   int   `json:"distinct_codes"` // distinct js_code values seen
	MaxCallsPerCode int   `json:"max_calls_per_code"`
	CodesRepeated   int   `json:"codes_repeated"` // codes asked more than once (answered 40163)
	Rejected        int   `json:"rejected"`       // bad appid/secret/code
	Connections     int64 `json:"connections"`    // TCP connections accepted
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	appid := flag.String("appid", "wxbench0000000002", "the one app it knows")
	secretEnv := flag.String("secret-env", "WXBENCH_SECRET", "environment variable holding the app's secret")
	latency := flag.Duration("latency", 20*time.Millisecond, "delay before each code2session answer")
	flag.Parse()

	s := &server{appid: *appid, secret: os.Getenv(*secretEnv), latency: *latency, perCode: map[string]int{}}
	if s.secret == "" {
		log.Fatalf("$%s is empty", *secretEnv)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /sns/jscode2session", s.code2session)
	mux.HandleFunc("GET /stats", s.stats)
	mux.HandleFunc("POST /reset", s.reset)
	srv := &http.Server{
		Addr:    *addr,
		Handler: mux,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	log.Printf("fakeplatform: app %s, latency %s, on %s", s.appid, s.latency, *addr)
	log.Fatal(srv.ListenAndServe())
}

func (s *server) code2session(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	code := q.Get("js_code")
	if q.Get("appid") != s.appid || q.Get("secret") != s.secret || code == "" || q.Get("grant_type") != "authorization_code" {
		s.mu.Lock()
		s.rejected++
		s.mu.Unlock()
		writeJSON(w, map[string]any{"errcode": 40125, "errmsg": "invalid appsecret"})
		return
	}
	s.mu.Lock()
	s.calls++
	s.perCode[code]++
	n := s.perCode[code]
	s.mu.Unlock()

	time.Sleep(s.latency)
	if n > 1 {
		writeJSON(w, map[string]any{"errcode": 40163, "errmsg": "code been used"})
		return
	}
	sum := sha256.Sum256([]byte(s.appid + "|" + code))
	id := hex.EncodeToString(sum[:])
	key := make([]byte, 16)
	rand.Read(key)
	writeJSON(w, map[string]any{
		"openid":      "o" + id[:27],
		"unionid":     "u" + id[27:55],
		"session_key": base64.StdEncoding.EncodeToString(key),
	})
}

func (s *server) stats(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := stats{Calls: s.calls, DistinctCodes: len(s.perCode), Rejected: s.rejected}
	for _, n := range s.perCode {
		st.MaxCallsPerCode = max(st.MaxCallsPerCode, n)
		if n > 1 {
			st.CodesRepeated++
		}
	}
	st.Connections = s.conns.Load() - s.connsBase
	s.mu.Unlock()
	if r.URL.Query().Get("format") == "text" {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "calls=%d\ndistinct_codes=%d\nmax_calls_per_code=%d\ncodes_repeated=%d\nrejected=%d\nconnections=%d\n",
			st.Calls, st.DistinctCodes, st.MaxCallsPerCode, st.CodesRepeated, st.Rejected, st.Connections)
		return
	}
	writeJSON(w, st)
}

func (s *server) reset(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.perCode = map[string]int{}
	s.calls, s.rejected = 0, 0
	s.connsBase = s.conns.Load()
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
