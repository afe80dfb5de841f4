// Command upstream is the app behind every configuration of bench/gate.sh:
// the same tiny HTTP server answers plain reverse_proxy, the wxauth gate and
// forward_auth, so the three differ only in what sits in front of it.
//
// GET / (any path) answers a constant 200 "hello\n" and does no work at all,
// so the measurement is the proxy's. GET /__echo answers the identity
// headers it received and whether an Authorization header reached it; the
// script uses it once per configuration to check the setup before loading it.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"sort"
	"strings"
)

var hello = []byte("hello\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/__echo", func(w http.ResponseWriter, r *http.Request) {
		var lines []string
		for name, vals := range r.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-wx-") {
				lines = append(lines, fmt.Sprintf("%s: %s", name, strings.Join(vals, ",")))
			}
		}
		sort.Strings(lines)
		lines = append(lines, fmt.Sprintf("authorization-present: %t", r.Header.Get("Authorization") != ""))
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, strings.Join(lines, "\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write(hello)
	})
	log.Fatal(http.Serve(ln, mux))
}
