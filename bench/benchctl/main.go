// Command benchctl is bench/gate.sh's small HTTP helper, so the script needs
// no curl or jq:
//
//	benchctl ports N              print N free loopback TCP ports, one per line
//	benchctl wait URL [TIMEOUT]   poll URL until it answers anything (default 30s)
//	benchctl login URL CODE       POST {"code": CODE} as JSON, print access_token
//	benchctl get URL [TOKEN]      GET (with a Bearer token), print status then body
//	benchctl post URL             POST with no body, fail unless 2xx
//	benchctl redis-caddy DIR      build, into DIR, a Caddy with wxauth and
//	                              caddy-storage-redis (from ../shared), print its path
//	benchctl redis-module DIR     write that build's scratch module into DIR, print its folder
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

var client = &http.Client{Timeout: 10 * time.Second}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "ports":
		need(args, 1)
		n, err := strconv.Atoi(args[0])
		check(err)
		ports(n)
	case "wait":
		need(args, 1)
		timeout := 30 * time.Second
		if len(args) > 1 {
			d, err := time.ParseDuration(args[1])
			check(err)
			timeout = d
		}
		wait(args[0], timeout)
	case "login":
		need(args, 2)
		login(args[0], args[1])
	case "get":
		need(args, 1)
		token := ""
		if len(args) > 1 {
			token = args[1]
		}
		get(args[0], token)
	case "post":
		need(args, 1)
		resp, err := client.Post(args[0], "", nil)
		check(err)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			fail("POST %s: HTTP %d", args[0], resp.StatusCode)
		}
	case "redis-caddy":
		need(args, 1)
		b, err := e2etest.BuildCaddyWithRedis(args[0])
		check(err)
		fmt.Println(b.Bin)
	case "redis-module":
		need(args, 1)
		dir, err := e2etest.WriteRedisModule(args[0])
		check(err)
		fmt.Println(dir)
	default:
		usage()
	}
}

func ports(n int) {
	// Hold every listener until all are chosen, so the N ports differ.
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		check(err)
		lns = append(lns, ln)
	}
	for _, ln := range lns {
		fmt.Println(ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
}

func wait(url string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	probe := &http.Client{Timeout: time.Second}
	for {
		resp, err := probe.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			fail("no answer from %s after %s: %v", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func login(url, code string) {
	body, _ := json.Marshal(map[string]string{"code": code})
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(err)
	var s struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &s) != nil || s.AccessToken == "" {
		fail("login at %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	fmt.Println(s.AccessToken)
}

func get(url, token string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	check(err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	check(err)
	fmt.Println(resp.StatusCode)
	os.Stdout.Write(b)
}

func need(args []string, n int) {
	if len(args) < n {
		usage()
	}
}

func usage() {
	fail("usage: benchctl ports N | wait URL [TIMEOUT] | login URL CODE | get URL [TOKEN] | post URL | redis-caddy DIR | redis-module DIR")
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "benchctl: "+format+"\n", a...)
	os.Exit(1)
}
