#!/usr/bin/env bash
# The client library's checks: its tests against a real gateway (the Caddy
# of this repository), and its declarations against WeChat's typings.
#   bash client/test.sh        (from anywhere; CI runs it after the Go tests)
# Needs Node.js >= 20 with npm, and Go. Without Node it skips, except under
# CI=true, where it fails.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"

missing=""
command -v node >/dev/null 2>&1 || missing="node"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
	if [ "${CI:-}" = "true" ]; then
		echo "client/test.sh: FAIL: $missing not found (CI=true: a missing tool is a failure)" >&2
		exit 1
	fi
	echo "client/test.sh: SKIP: $missing not found; install Node.js >= 20 to run the client tests" >&2
	exit 0
fi
major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$major" -lt 20 ]; then
	echo "client/test.sh: FAIL: Node.js $(node --version) is too old; the tests need >= 20" >&2
	exit 1
fi
command -v go >/dev/null 2>&1 || { echo "client/test.sh: FAIL: go not found (needed to build the gateway)" >&2; exit 1; }

echo "== node $(node --version), npm $(npm --version)"
cd "$here"
npm ci --no-audit --no-fund

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "== build the gateway (go build ./cmd/caddy)"
(cd "$root" && go build -o "$tmp/caddy" ./cmd/caddy)

failed=0
echo "== node --test (client/test/*.test.mjs)"
WXAUTH_CADDY="$tmp/caddy" node --test test/*.test.mjs || failed=1

echo "== tsc --noEmit (declarations and examples against miniprogram-api-typings)"
npx --no-install tsc --noEmit -p tsconfig.json || failed=1

if [ "$failed" -ne 0 ]; then
	echo "client/test.sh: FAILED" >&2
	exit 1
fi
echo "client/test.sh: ok"
