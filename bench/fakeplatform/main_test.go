package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// The counters keep the formats gate.sh reads.
func TestStatsAndReset(t *testing.T) {
	s := newServer("wxbench", "sek", time.Millisecond)
	srv := httptest.NewUnstartedServer(s.handler())
	srv.Config.ConnState = s.connState
	srv.Start()
	defer srv.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	login := func(secret, code string) string {
		q := url.Values{"appid": {"wxbench"}, "secret": {secret}, "js_code": {code}, "grant_type": {"authorization_code"}}
		return get("/sns/jscode2session?" + q.Encode())
	}

	login("sek", "c1")
	if got := login("sek", "c1"); got != `{"errcode":40163,"errmsg":"code been used"}` {
		t.Errorf("second exchange: %s", got)
	}
	login("wrong", "c2")
	const wantJSON = `{"calls":2,"distinct_codes":1,"max_calls_per_code":2,"codes_repeated":1,"rejected":1,"connections":1}` + "\n"
	if got := get("/stats"); got != wantJSON {
		t.Errorf("/stats = %q, want %q", got, wantJSON)
	}
	const wantText = "calls=2\ndistinct_codes=1\nmax_calls_per_code=2\ncodes_repeated=1\nrejected=1\nconnections=1\n"
	if got := get("/stats?format=text"); got != wantText {
		t.Errorf("/stats?format=text = %q, want %q", got, wantText)
	}

	resp, err := http.Post(srv.URL+"/reset", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("/reset answered %d", resp.StatusCode)
	}
	if got := get("/stats?format=text"); got != "calls=0\ndistinct_codes=0\nmax_calls_per_code=0\ncodes_repeated=0\nrejected=0\nconnections=0\n" {
		t.Errorf("after /reset: %q", got)
	}
}
