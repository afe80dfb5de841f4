#!/usr/bin/env bash
# bench/logins.sh: logins per second on Redis storage next to file storage,
# measured side by side in one run (issue 14: target ≥ 2× on Redis).
#
#   bench/logins.sh 2>&1 | tee bench/results/logins.txt   # about 2 minutes
#   ROUNDS=3 DURATION=10s bench/logins.sh
#
# One Caddy binary with wxauth and caddy-storage-redis (built from the
# scratch module the cluster tests use; ../shared/thirdparty holds the
# module), started twice: once on `storage file_system`, once on `storage
# redis` (a redis-server this script starts, no persistence). Both log in
# against bench/fakeplatform (PLATFORM_LATENCY per code2Session). wrk posts
# a fresh code with every request (bench/login.lua, repeat 1): every answer
# is a whole login (claim, exchange, user, code record, session, token).
# The rounds alternate between the two so that drift of the machine hits
# both alike; reported are each round, the medians and the ratio, and the
# CPU of Caddy (+ redis-server on Redis) per login.
#
# Pinning as in gate.sh: wrk on the last CPU, the servers on the others.
# Settings: ROUNDS=5 DURATION=10s WARMUP=3s CONNECTIONS=64 PLATFORM_LATENCY=20ms
#           STORAGE_ROOT=<temp> (where file storage goes)
# Needs go, wrk and redis-server (installed with apt-get when run as root).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-64}
PLATFORM_LATENCY=${PLATFORM_LATENCY:-20ms}

say() { printf '%s\n' "$*"; }
die() { printf 'logins.sh: %s\n' "$*" >&2; exit 1; }

for tool in wrk redis-server; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			apt-get install -y --no-install-recommends "$tool" >/dev/null 2>&1 ||
				{ apt-get update >/dev/null && apt-get install -y --no-install-recommends "$tool" >/dev/null; }
		else
			die "$tool is missing: sudo apt-get install -y $tool"
		fi
	fi
done

NCPU=$(nproc)
SRV=() LOADGEN=() THREADS=2
if command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
	SRV=(taskset -c "0-$((NCPU - 2))") LOADGEN=(taskset -c "$((NCPU - 1))") THREADS=1
fi

WORK=$(mktemp -d)
STORE=${STORAGE_ROOT:-$WORK}
declare -A PID=()
cleanup() {
	for pid in "${PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$WORK"
	[ "$STORE" = "$WORK" ] || rm -rf "$STORE/wxauth-logins-file"
}
trap cleanup EXIT
start() {
	local name=$1
	shift
	"${SRV[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}
alive() { kill -0 "${PID[$1]}" 2>/dev/null || die "$1 exited: $(tail -n 20 "$WORK/$1.log")"; }
CLK_TCK=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

say "== wxauth logins: file storage vs Redis ($(date -u '+%Y-%m-%d %H:%M UTC'))"
say "machine: $(grep -m1 'model name' /proc/cpuinfo | sed 's/^.*: //'), $NCPU CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(go version | cut -d' ' -f3); redis $(redis-server --version | cut -d' ' -f3); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
say "settings: ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS PLATFORM_LATENCY=$PLATFORM_LATENCY; file storage on $(stat -f -c %T "$STORE")"

BIN=$WORK/bin
mkdir -p "$BIN"
go build -o "$BIN/" ./bench/benchctl ./bench/fakeplatform
CTL=$BIN/benchctl
CADDY=$("$CTL" redis-caddy "$WORK")
mapfile -t P < <("$CTL" ports 4)
P_REDIS=${P[0]} P_FAKE=${P[1]} P_FILE=${P[2]} P_RED=${P[3]}

start redis-server redis-server --port "$P_REDIS" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK"
for _ in $(seq 100); do [ "$(redis-cli -p "$P_REDIS" ping 2>/dev/null)" = PONG ] && break; sleep 0.1; done
export WXBENCH_SECRET="bench-appsecret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
start fakeplatform "$BIN/fakeplatform" -addr "127.0.0.1:$P_FAKE" -appid wxbench0000000002 \
	-secret-env WXBENCH_SECRET -latency "$PLATFORM_LATENCY"
"$CTL" wait "http://127.0.0.1:$P_FAKE/stats" 10s

# caddy_config NAME PORT STORAGE-LINES
caddy_config() {
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/Caddyfile" <<-CF
		{
			admin off
			persist_config off
			$3
			log {
				output stderr
				level ERROR
			}
		}

		http://127.0.0.1:$2 {
			bind 127.0.0.1
			wxauth {
				app wxbench0000000002 {
					secret {env.WXBENCH_SECRET}
				}
				api_base http://127.0.0.1:$P_FAKE
				rate_limit off
				# The per-app bound on platform calls in flight (16) would cap
				# both at 16 / PLATFORM_LATENCY logins a second: lift it, so
				# storage is what is measured.
				platform_concurrency 512
			}
			respond "hello"
		}
	CF
}
caddy_config file "$P_FILE" "storage file_system $STORE/wxauth-logins-file"
caddy_config redis "$P_RED" "storage redis {
		address 127.0.0.1:$P_REDIS
		key_prefix wxauth-logins
	}"
for name in file redis; do
	port=$P_FILE
	[ $name = redis ] && port=$P_RED
	XDG_DATA_HOME=$WORK/$name/data XDG_CONFIG_HOME=$WORK/$name/config \
		start "$name" "$CADDY" run --config "$WORK/$name/Caddyfile" --adapter caddyfile
	"$CTL" wait "http://127.0.0.1:$port/" 30s
	alive "$name"
	"$CTL" login "http://127.0.0.1:$port/wx/login" "probe-$name" >/dev/null
done

# round NAME TAG DURATION: prints "rps errors cpu_us_per_login"
round() {
	local name=$1 tag=$2 dur=$3 port=$P_FILE
	local procs=("${PID[$name]}")
	if [ "$name" = redis ]; then port=$P_RED procs+=("${PID[redis-server]}"); fi
	local before=0 after=0 p
	for p in "${procs[@]}"; do before=$((before + $(ticks "$p"))); done
	"${LOADGEN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" -s "$ROOT/bench/login.lua" \
		"http://127.0.0.1:$port/" -- "$tag" 1 >"$WORK/wrk-$tag.txt" 2>&1
	for p in "${procs[@]}"; do after=$((after + $(ticks "$p"))); done
	alive "$name"
	awk -v ticks=$((after - before)) -v hz="$CLK_TCK" '
		/^Requests\/sec:/ { rps = $2 }
		/ requests in / { req = $1 }
		/Non-2xx or 3xx responses:/ { err += $NF }
		/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
		END { printf "%.0f %d %.0f\n", rps, err, (req > 0 ? ticks / hz * 1e6 / req : 0) }' "$WORK/wrk-$tag.txt"
}

say ""
say "round  storage  logins/s  errors  CPU µs/login (Caddy, + redis-server on Redis)"
round file wf "$WARMUP" >/dev/null
round redis wr "$WARMUP" >/dev/null
declare -a RF=() RR=()
for r in $(seq "$ROUNDS"); do
	order="file redis"
	[ $((r % 2)) = 0 ] && order="redis file"
	for name in $order; do
		read -r rps err cpu < <(round "$name" "r$r$name" "$DURATION")
		printf '%5d  %-7s  %8s  %6s  %s\n' "$r" "$name" "$rps" "$err" "$cpu"
		[ "$err" = 0 ] || die "$name answered $err logins with an error; see $WORK/wrk-r$r$name.txt"
		if [ "$name" = file ]; then RF+=("$rps"); else RR+=("$rps"); fi
	done
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
mf=$(median "${RF[@]}") mr=$(median "${RR[@]}")
calls=$("$CTL" get "http://127.0.0.1:$P_FAKE/stats?format=text" | sed -n 's/^calls=//p')
say ""
awk -v f="$mf" -v r="$mr" 'BEGIN { printf "median logins/s: file %.0f, redis %.0f: redis/file = %.2f×\n", f, r, r / f }'
say "platform: $calls code2session calls in all (one per login)"
say "redis keys after the run: $(redis-cli -p "$P_REDIS" dbsize)"
