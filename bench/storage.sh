#!/usr/bin/env bash
# bench/storage.sh: the storage scale benchmarks of issue 14 (the
# Benchmark*250k, *1M and *100k in internal/store) on file storage and on
# Redis, one after the other on the same machine.
#
#   bench/storage.sh 2>&1 | tee bench/results/storage.txt   # about 35 minutes
#   STORAGES=redis BENCH=FirstSync bench/storage.sh           # one of them
#
# The benchmarks write their records first (outside the timing), the way the
# gateway writes them, then time: a node's first revocation sync with 250k
# revocations; a steady sync with nothing new (wall and CPU time); an hourly
# sweep with 1M live sessions and nothing expired; a sweep that removes 100k
# expired sessions and their 100k idle users.
#
# File storage is Caddy's file_system in a temporary folder (STORAGE_ROOT
# to put it elsewhere, e.g. /dev/shm). Redis is a redis-server this script
# starts on a free port (no persistence) and stops on exit; the Redis storage
# module (caddy-storage-redis, from ../shared/thirdparty) is linked into
# the test binary by running the package's tests from the scratch module
# the cluster tests build with, with an -overlay file that imports it: the
# project's go.mod never names it. Between benchmarks Redis is emptied;
# after the 1M one its memory use is printed (INFO memory).
#
# Needs go and, for Redis, redis-server (apt-get install -y redis-server;
# installed when run as root with apt-get).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STORAGES=${STORAGES:-file redis}
BENCH=${BENCH:-FirstSync SteadySync SweepNothingExpired SweepExpired}

say() { printf '%s\n' "$*"; }
die() { printf 'storage.sh: %s\n' "$*" >&2; exit 1; }

WORK=$(mktemp -d)
REDIS_PID=
cleanup() {
	if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
[ -n "${STORAGE_ROOT:-}" ] && export TMPDIR=$STORAGE_ROOT

# benchtime per benchmark: the one-pass ones run a few times, the steady
# sync many.
benchtime() {
	case $1 in
	FirstSync) echo 3x ;; SteadySync) echo 200x ;; SweepNothingExpired) echo 5x ;; SweepExpired) echo 1x ;;
	*) die "unknown benchmark $1" ;;
	esac
}

say "== $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: /cpu: /' || true

run_file() {
	for b in $BENCH; do
		WXAUTH_BENCH_STORAGE=file go test -run '^$' -bench "Benchmark[A-Za-z]*$b" -benchtime "$(benchtime "$b")" \
			-timeout 120m ./internal/store | grep -v '^\(goos\|goarch\|pkg\|cpu\|PASS\|ok\)'
	done
}

run_redis() {
	if ! command -v redis-server >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			apt-get install -y --no-install-recommends redis-server >/dev/null 2>&1 ||
				{ apt-get update >/dev/null && apt-get install -y --no-install-recommends redis-server >/dev/null; }
		else
			die "redis-server is missing: sudo apt-get install -y redis-server"
		fi
	fi
	go build -o "$WORK/benchctl" ./bench/benchctl
	port=$("$WORK/benchctl" ports 1)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 100); do
		[ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && break
		sleep 0.1
	done
	[ "$(redis-cli -p "$port" ping)" = PONG ] || die "redis-server did not start: $(cat "$WORK/redis.log")"
	say "redis: $(redis-server --version | cut -d' ' -f3) on 127.0.0.1:$port"

	mod=$("$WORK/benchctl" redis-module "$WORK")
	cat >"$WORK/link_redis_test.go" <<-'GO'
		package store

		// Links the Redis storage module into this test binary (bench/storage.sh).
		import _ "github.com/pberkel/caddy-storage-redis"
	GO
	printf '{"Replace":{"%s":"%s"}}\n' "$ROOT/internal/store/zz_link_redis_test.go" "$WORK/link_redis_test.go" >"$WORK/overlay.json"
	(cd "$mod" && GOWORK=off GOFLAGS=-mod=mod go mod tidy 2>"$WORK/tidy.log") || die "go mod tidy in $mod: $(cat "$WORK/tidy.log")"
	for b in $BENCH; do
		redis-cli -p "$port" flushall >/dev/null
		(cd "$mod" && GOWORK=off GOFLAGS=-mod=mod WXAUTH_BENCH_STORAGE=redis WXAUTH_REDIS_ADDR=127.0.0.1:$port \
			go test -overlay "$WORK/overlay.json" -run '^$' -bench "Benchmark[A-Za-z]*$b" -benchtime "$(benchtime "$b")" \
			-timeout 120m github.com/wxauth/caddy-wxauth/internal/store 2>&1) |
			grep -v '^\(goos\|goarch\|pkg\|cpu\|PASS\|ok\|go: downloading\)' | grep -v 'INFO.*caddy-storage-redis'
		if [ "$b" = SweepNothingExpired ]; then
			say "redis after it: $(redis-cli -p "$port" dbsize) keys, $(redis-cli -p "$port" info memory | tr -d '\r' | grep -E '^used_memory(_dataset)?:' | tr '\n' ' ')"
		fi
	done
}

for s in $STORAGES; do
	say ""
	say "== $s storage"
	case $s in
	file) run_file ;;
	redis) run_redis ;;
	*) die "STORAGES: $s is not file or redis" ;;
	esac
done
