// Package browser drives a real browser (headless Chromium, through the
// DevTools protocol with chromedp) against a real Caddy with wxauth, to test
// what only a browser decides: which cookies it keeps, which it sends where,
// where redirects end, what a page's fetch() carries, and what a page of
// another origin of the same site can make the browser send.
//
// Each test runs its own Caddy process (the cmd/caddy binary, built once in
// TestMain, as the cluster tests do), in sandbox mode with a website (QR
// login) app in front of an upstream that records what it got, and its own
// Chromium with a new empty profile. The Caddy also serves a second site on
// another port of 127.0.0.1: another origin of the same site, where the
// attacker's pages are.
//
// Chromium is found at $CHROMIUM, else /usr/bin/chromium (Debian's package),
// chromium-browser, google-chrome. Without one, the tests skip, except under
// CI=true, where the package fails: CI must not pass without running them.
package browser

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wxauth/caddy-wxauth/internal/e2etest"
)

// caddyBin is the Caddy with wxauth that TestMain builds.
var caddyBin string

// chromiumPath is the browser the tests drive; noBrowser says why there is
// none (the tests skip with it).
var (
	chromiumPath string
	noBrowser    string
)

// installHint is what to do when no Chromium is found.
const installHint = "install chromium: apt-get install -y chromium (or set CHROMIUM to a Chromium or Chrome binary)"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	path, err := findChromium()
	if err != nil {
		if e2etest.InCI() {
			fmt.Fprintf(os.Stderr, "browser tests: no browser under CI: %v\n%s\n", err, installHint)
			return 1
		}
		noBrowser = fmt.Sprintf("no browser (%v): %s", err, installHint)
		return m.Run() // every test skips; no Caddy to build
	}
	chromiumPath = path

	dir, err := os.MkdirTemp("", "wxauth-browser-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if caddyBin, err = e2etest.BuildCaddy(dir); err != nil {
		fmt.Fprintln(os.Stderr, "browser tests:", err)
		return 1
	}
	return m.Run()
}

// findChromium returns the browser to drive: $CHROMIUM if set (and then
// only it), else the first of the usual names that is installed.
func findChromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("CHROMIUM=%q: %w", p, err)
		}
		return found, nil
	}
	candidates := []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	for _, name := range candidates {
		if found, err := exec.LookPath(name); err == nil {
			return found, nil
		}
	}
	return "", fmt.Errorf("none of %s found", strings.Join(candidates, ", "))
}

// needBrowser skips the test when there is no browser; TestMain has
// already failed the package if that happens under CI.
func needBrowser(t *testing.T) {
	t.Helper()
	if chromiumPath == "" {
		t.Skip(noBrowser)
	}
}
