package platform

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestConcurrentCallsPerAppAreBounded: with MaxConcurrentPerApp 2 and two
// calls held open by the platform, a third call of the same app waits and
// then fails as rate_limited, without reaching the platform, while another
// app's call goes through; once the held calls end, the app calls again.
func TestConcurrentCallsPerAppAreBounded(t *testing.T) {
	var (
		mu      sync.Mutex
		arrived = map[string]int{}
	)
	hold := make(chan struct{})
	held := make(chan struct{}, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		appid := r.URL.Query().Get("appid")
		mu.Lock()
		arrived[appid]++
		mu.Unlock()
		if r.URL.Query().Get("js_code") == "hold" {
			held <- struct{}{}
			<-hold
		}
		_, _ = w.Write([]byte(`{"openid":"oABCDEFGHIJKLMNOPQRSTUVWXYZab","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}`))
	}))
	defer srv.Close()
	defer close(hold)

	c := &Client{MaxConcurrentPerApp: 2, Timeout: time.Second}
	app := testApp(srv.URL)
	other := testApp(srv.URL)
	other.AppID = "wxotherapp000001"

	ctx := context.Background()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Code2Session(ctx, app, "hold")
		}()
	}
	<-held
	<-held

	start := time.Now()
	_, err := c.Code2Session(ctx, app, "third")
	e := AsError(err)
	if e == nil || e.Code != RateLimited || e.RetryAfter <= 0 {
		t.Fatalf("third concurrent call: %v, want rate_limited with a RetryAfter", err)
	}
	if waited := time.Since(start); waited < 450*time.Millisecond || waited > 3*time.Second {
		t.Errorf("the third call gave up after %v; it should wait about half its timeout (500ms) for a slot", waited)
	}
	if _, err := c.Code2Session(ctx, other, "another-app"); err != nil {
		t.Fatalf("another app's call was held up by this app's bound: %v", err)
	}
	mu.Lock()
	if arrived[app.AppID] != 2 {
		t.Errorf("the platform saw %d calls of the app, want 2: the refused call must not reach it", arrived[app.AppID])
	}
	mu.Unlock()

	hold <- struct{}{}
	hold <- struct{}{}
	wg.Wait()
	if _, err := c.Code2Session(ctx, app, "after"); err != nil {
		t.Fatalf("after the held calls ended: %v (a slot was not given back)", err)
	}
}

// TestObserveSeesEveryExchange: each HTTP exchange, a retry included, is
// reported with the platform's errcode or what went wrong instead.
func TestObserveSeesEveryExchange(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"openid":"oABCDEFGHIJKLMNOPQRSTUVWXYZab","session_key":"tiihtNczf5v6AKRyjwEUhQ=="}`))
	})
	mux.HandleFunc("/invalid/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"errcode":40029,"errmsg":"invalid code"}`))
	})
	mux.HandleFunc("/busy/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"errcode":-1,"errmsg":"system busy"}`))
	})
	mux.HandleFunc("/5xx/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	})
	mux.HandleFunc("/garbage/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`<html>`))
	})
	mux.HandleFunc("/slow/sns/jscode2session", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedURL := "http://" + closed.Addr().String()
	closed.Close()

	var (
		mu  sync.Mutex
		got []string
	)
	c := &Client{RetryDelay: time.Millisecond, Timeout: 200 * time.Millisecond, Observe: func(x Exchange) {
		mu.Lock()
		defer mu.Unlock()
		if x.API != "code2session" || x.AppID != testAppID || x.Duration <= 0 {
			t.Errorf("exchange %+v: want api code2session, the app's appid and a duration", x)
		}
		got = append(got, x.Outcome)
	}}
	for _, tc := range []struct {
		base string
		want []string
	}{
		{srv.URL + "/ok", []string{"0"}},
		{srv.URL + "/invalid", []string{"40029"}},
		{srv.URL + "/busy", []string{"-1", "-1"}}, // retried once
		{srv.URL + "/5xx", []string{"http_status"}},
		{srv.URL + "/garbage", []string{"bad_answer"}},
		{srv.URL + "/slow", []string{"timeout"}},
		{closedURL, []string{"transport"}},
	} {
		mu.Lock()
		got = nil
		mu.Unlock()
		_, _ = c.Code2Session(context.Background(), testApp(tc.base), "code")
		mu.Lock()
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: observed %q, want %q", tc.base, got, tc.want)
		}
		mu.Unlock()
	}
}
