#!/usr/bin/env bash
# bench/gate.sh: what the wxauth gate costs, measured against plain
# reverse_proxy and against forward_auth to a separate auth service, plus
# how many logins per second the gateway completes against a slow platform.
#
# Run it from anywhere in the checkout:
#
#   bench/gate.sh                                   # about 3 minutes
#   bench/gate.sh 2>&1 | tee bench/results/latest.txt
#   DURATION=5s ROUNDS=2 bench/gate.sh              # quicker
#
# Needs: go (to build this Caddy and the helpers below) and wrk. If wrk is
# missing the script says how to install it (sudo apt-get install -y wrk) and
# exits 2; run as root on a machine with apt-get, it installs wrk itself.
# taskset (util-linux) is used when present, see PIN.
#
# What runs, all on 127.0.0.1 (each its own process):
#   upstream       bench/upstream: a Go server answering a constant "hello\n".
#                  The same one behind all three configurations.
#   plain          Caddy: reverse_proxy to upstream, with header_up
#                  -Authorization, so that, as with the two gated ones, the
#                  token is not sent on (wrk sends it to all three).
#   wxauth         Caddy: wxauth { app wxbench0000000001; sandbox } in front
#                  of the same reverse_proxy. Requests carry a valid access
#                  token from POST /wx/login {"code":"bench"} on this Caddy.
#   forward_auth   Caddy: forward_auth to bench/authsvc (copy_headers
#                  X-WX-OPENID ...), then the same reverse_proxy with
#                  header_up -Authorization (the gate also drops it).
#   authsvc        bench/authsvc: verifies the same token the same way (same
#                  JWT library, same algorithm and kid check, same claims)
#                  and, like the gate, caches tokens it verified.
# Signing: SIGNING=ed25519 (default, the plugin's default) leaves wxauth on its
# own Ed25519 key in Caddy storage; authsvc reads the public half from that
# storage (wxauth/signing/ed25519.pem). SIGNING=hs256 gives the wxauth Caddy
# `signing_key {env.WXBENCH_SIGNING_KEY}` and authsvc the same secret. With
# both caches warm after the first request, the algorithm hardly matters.
#
# Every reverse_proxy and forward_auth keeps up to IDLE_CONNS idle upstream
# connections (Caddy's default is 32 per host, fewer than CONNECTIONS), so no
# configuration is measured opening TCP connections. Caddy runs with admin off,
# logs at ERROR, storage file_system in a temporary folder.
#
# Load: wrk, a warm-up of WARMUP per target, then ROUNDS rounds; each round
# loads every target once for DURATION, the order rotating between rounds so
# drift of the machine hits every target alike. Reported per target: the
# median over rounds of req/s, p50 and p99 latency, the servers' CPU time per
# request (Caddy + upstream (+ authsvc), from /proc/<pid>/stat), and the
# ratios to plain reverse_proxy.
#
# Login run: bench/fakeplatform answers /sns/jscode2session after
# PLATFORM_LATENCY (20ms), once per code (a second exchange of a code gets
# 40163, as on the real platform), and counts calls per code. A fourth Caddy
# (wxauth with api_base pointing at it, secret {env.WXBENCH_SECRET}) is loaded
# by wrk with bench/login.lua: POST /wx/login, each code posted LOGIN_REPEAT
# times. Reported: posts/s, p50/p99, answers, and codes posted vs platform
# calls vs distinct codes the platform saw.
#
# PIN: with taskset and at least 2 CPUs (PIN=auto, the default), wrk gets the
# last CPU and every server process the others, so the load generator never
# competes with what it measures; on 2 cores that gives the servers one core.
# PIN=0 runs everything unpinned.
#
# Settings (environment):
#   DURATION=8s  WARMUP=3s  ROUNDS=5  CONNECTIONS=64
#   THREADS=<wrk CPUs: 1 when pinned on 2 cores, else 2>
#   PIN=auto|0  SIGNING=ed25519|hs256  IDLE_CONNS=256
#   LOGIN_DURATION=10s  LOGIN_WARMUP=2s  LOGIN_CONNECTIONS=<CONNECTIONS>
#   LOGIN_REPEAT=2  PLATFORM_LATENCY=20ms
#   KEEP_WORK=0  (1 keeps the temporary folder: configs, logs, wrk outputs)
#   STORAGE_ROOT=<the temporary folder>  where the Caddys' storage folders
#                 go, e.g. /dev/shm to take the disk out of the login run
#                 (every login writes three files with fsync)
#   GATE=1 LOGIN=1  (0 skips the gate comparison or the login run)
#   WAIT_QUIET=0 (seconds to wait, at most, for other processes to go idle
#                 before starting; the load they cause is reported either way)
#
# The Go runtime's environment (GOGC, GOMEMLIMIT, GODEBUG) reaches every
# server process unchanged. Every process the script starts is stopped on
# exit (also on Ctrl-C), by its pid.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-3s}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-64}
PIN=${PIN:-auto}
SIGNING=${SIGNING:-ed25519}
IDLE_CONNS=${IDLE_CONNS:-256}
LOGIN_DURATION=${LOGIN_DURATION:-10s}
LOGIN_WARMUP=${LOGIN_WARMUP:-2s}
LOGIN_CONNECTIONS=${LOGIN_CONNECTIONS:-$CONNECTIONS}
LOGIN_REPEAT=${LOGIN_REPEAT:-2}
PLATFORM_LATENCY=${PLATFORM_LATENCY:-20ms}
KEEP_WORK=${KEEP_WORK:-0}
WAIT_QUIET=${WAIT_QUIET:-0}
GATE=${GATE:-1}
LOGIN=${LOGIN:-1}

say() { printf '%s\n' "$*"; }
die() { printf 'gate.sh: %s\n' "$*" >&2; exit 1; }
# machine_ticks: user+nice+system clock ticks of all CPUs so far (irq,
# softirq and steal left out, as they are not charged to processes either).
machine_ticks() {
	awk '/^cpu / { print $2 + $3 + $4; exit }' /proc/stat
}

# ---------------------------------------------------------------- the tools
need_tools() {
	command -v go >/dev/null 2>&1 || {
		say "gate.sh needs Go (https://go.dev/dl/) to build Caddy and its helpers." >&2
		exit 2
	}
	if ! command -v wrk >/dev/null 2>&1; then
		if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
			say "wrk is missing; installing it (running as root with apt-get)"
			apt-get install -y wrk >/dev/null 2>&1 ||
				{ apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } ||
				die "apt-get install -y wrk failed"
		else
			cat >&2 <<-'EOF'
				gate.sh needs wrk (the HTTP load generator). Install it with:

				    sudo apt-get install -y wrk

				(Debian/Ubuntu; elsewhere: your package manager's wrk, or build
				https://github.com/wg/wrk), then run bench/gate.sh again.
			EOF
			exit 2
		fi
	fi
}
need_tools

case "$SIGNING" in ed25519 | hs256) ;; *) die "SIGNING=$SIGNING: want ed25519 or hs256" ;; esac

NCPU=$(nproc)
if [ "$PIN" != 0 ] && command -v taskset >/dev/null 2>&1 && [ "$NCPU" -ge 2 ]; then
	SERVER_CPUS="0-$((NCPU - 2))"
	[ "$NCPU" = 2 ] && SERVER_CPUS=0
	WRK_CPUS=$((NCPU - 1))
	SRV=(taskset -c "$SERVER_CPUS")
	LOADGEN=(taskset -c "$WRK_CPUS")
	THREADS=${THREADS:-1}
	PINNING="servers on CPU $SERVER_CPUS, wrk on CPU $WRK_CPUS (taskset)"
else
	SRV=()
	LOADGEN=()
	THREADS=${THREADS:-2}
	PINNING="none (every process may run on any CPU)"
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/wxauth-bench.XXXXXX")
if [ -n "${STORAGE_ROOT:-}" ]; then
	STORE=$(mktemp -d "$STORAGE_ROOT/wxauth-bench-storage.XXXXXX")
else
	STORE=$WORK
fi
declare -A PID=()
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local name pid
	for name in "${!PID[@]}"; do
		kill -TERM "${PID[$name]}" 2>/dev/null || true
	done
	for _ in $(seq 50); do
		local alive=0
		for pid in "${PID[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ $alive = 0 ] && break
		sleep 0.1
	done
	for name in "${!PID[@]}"; do
		if kill -0 "${PID[$name]}" 2>/dev/null; then
			say "gate.sh: $name (pid ${PID[$name]}) ignored SIGTERM; killing it" >&2
			kill -KILL "${PID[$name]}" 2>/dev/null || true
		fi
		wait "${PID[$name]}" 2>/dev/null || true
	done
	if [ "$KEEP_WORK" = 1 ]; then
		say "kept $WORK"
	else
		rm -rf "$WORK"
		[ "$STORE" = "$WORK" ] || rm -rf "$STORE"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in the background on the server CPUs, output to
# $WORK/NAME.log.
start() {
	local name=$1
	shift
	"${SRV[@]}" "$@" >"$WORK/$name.log" 2>&1 &
	PID[$name]=$!
}

# alive NAME: fail with the process's log if it has exited.
alive() {
	if ! kill -0 "${PID[$1]}" 2>/dev/null; then
		say "gate.sh: $1 exited; its log:" >&2
		tail -n 40 "$WORK/$1.log" >&2 || true
		exit 1
	fi
}

# ---------------------------------------------------------------- header
print_cmdline() {
	local envs="" v
	for v in DURATION WARMUP ROUNDS CONNECTIONS THREADS PIN SIGNING IDLE_CONNS LOGIN_DURATION \
		LOGIN_WARMUP LOGIN_CONNECTIONS LOGIN_REPEAT PLATFORM_LATENCY WAIT_QUIET GATE LOGIN; do
		envs+="$v=${!v} "
	done
	say "command:  $(printf '%q ' "$0" "$@")"
	say "settings: ${envs% }"
}
say "== wxauth gate benchmark ($(date -u '+%Y-%m-%d %H:%M:%S UTC'))"
print_cmdline "$@"
say ""
say "== machine"
say "cpu:      $(grep -m1 '^model name' /proc/cpuinfo | sed 's/^model name[[:space:]]*:[[:space:]]*//')"
say "nproc:    $NCPU"
say "memory:   $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
say "kernel:   $(uname -srm)"
say "go:       $(go version)"
say "wrk:      $( (wrk -v 2>&1 || true) | sed -n 1p)"
say "pinning:  $PINNING"
say "storage:  $STORE ($(stat -f -c %T "$STORE") file system)"
say "commit:   $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (working tree has changes)')"

# ---------------------------------------------------------------- build
say ""
say "== build"
BIN=$WORK/bin
mkdir -p "$BIN"
t0=$(date +%s)
go build -o "$BIN/caddy" ./cmd/caddy
go build -o "$BIN/" ./bench/upstream ./bench/authsvc ./bench/fakeplatform ./bench/benchctl
say "built caddy and bench/{upstream,authsvc,fakeplatform,benchctl} in $(($(date +%s) - t0))s"
say "caddy:    $("$BIN/caddy" version | sed -n 1p)"
CTL=$BIN/benchctl

mapfile -t PORTS < <("$CTL" ports 7)
P_UP=${PORTS[0]} P_PLAIN=${PORTS[1]} P_WX=${PORTS[2]} P_FA=${PORTS[3]} P_AUTH=${PORTS[4]}
P_FAKE=${PORTS[5]} P_LOGIN=${PORTS[6]}

export WXBENCH_SECRET="bench-appsecret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export WXBENCH_SIGNING_KEY="bench-signing-key-$(od -An -N24 -tx8 /dev/urandom | tr -d ' \n')"

# ---------------------------------------------------------------- configs
# caddy_config NAME PORT SITE-BODY: write $WORK/NAME/Caddyfile.
caddy_config() {
	mkdir -p "$WORK/$1"
	cat >"$WORK/$1/Caddyfile" <<EOF
{
	admin off
	persist_config off
	storage file_system $STORE/$1/storage
	log {
		output stderr
		level ERROR
	}
}

http://127.0.0.1:$2 {
	bind 127.0.0.1
$3
}
EOF
}
KEEPALIVE="transport http {
			keepalive_idle_conns_per_host $IDLE_CONNS
		}"
PROXY="	reverse_proxy 127.0.0.1:$P_UP {
		$KEEPALIVE
	}"
SIGNING_LINE=""
[ "$SIGNING" = hs256 ] && SIGNING_LINE="
		signing_key {env.WXBENCH_SIGNING_KEY}"

# All three send the upstream no Authorization header: the gate drops the
# token, and a plain proxy passing its ~450 bytes on would do work the others
# do not.
caddy_config plain "$P_PLAIN" "	reverse_proxy 127.0.0.1:$P_UP {
		header_up -Authorization
		$KEEPALIVE
	}"
caddy_config wxauth "$P_WX" "	wxauth {
		app wxbench0000000001
		sandbox$SIGNING_LINE
	}
$PROXY"
caddy_config forward_auth "$P_FA" "	forward_auth 127.0.0.1:$P_AUTH {
		uri /verify
		copy_headers X-WX-OPENID X-WX-APPID X-WX-UNIONID X-WX-NICKNAME X-WX-AVATAR X-WX-SOURCE
		$KEEPALIVE
	}
	reverse_proxy 127.0.0.1:$P_UP {
		header_up -Authorization
		$KEEPALIVE
	}"
caddy_config login "$P_LOGIN" "	wxauth {
		app wxbench0000000002 {
			secret {env.WXBENCH_SECRET}
		}
		api_base http://127.0.0.1:$P_FAKE
	}
$PROXY"

start_caddy() {
	local name=$1 port=$2
	# Caddy keeps its instance id and autosave under XDG dirs: keep them here.
	XDG_DATA_HOME=$WORK/$name/data XDG_CONFIG_HOME=$WORK/$name/config \
		start "$name" "$BIN/caddy" run --config "$WORK/$name/Caddyfile" --adapter caddyfile
	"$CTL" wait "http://127.0.0.1:$port/" 30s || { alive "$name"; die "$name did not answer"; }
	alive "$name"
}

say ""
say "== configs (every Caddy has: admin off, persist_config off, storage file_system <its temp dir>, log level ERROR)"
for name in plain wxauth forward_auth login; do
	say "# $name"
	sed -n '/^http:/,$p' "$WORK/$name/Caddyfile"
done

# ---------------------------------------------------------------- quiet?
# Anything else busy on the machine skews every number below. Measure it
# (nothing of ours runs yet); with WAIT_QUIET=<seconds>, wait that long at
# most for it to calm down.
background() {
	local a b
	a=$(machine_ticks)
	sleep 2
	b=$(machine_ticks)
	awk -v t=$((b - a)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz / 2 }'
}
say ""
say "== background load (before starting anything)"
waited=0
while :; do
	bg=$(background)
	if awk -v b="$bg" 'BEGIN { exit !(b < 0.15) }' || [ "$waited" -ge "$WAIT_QUIET" ]; then
		break
	fi
	sleep 8
	waited=$((waited + 10))
done
if awk -v b="$bg" 'BEGIN { exit !(b < 0.15) }'; then
	say "other processes: $bg cores busy (quiet)$([ "$waited" -gt 0 ] && echo " after waiting ${waited}s")"
else
	say "other processes: $bg cores busy: NOT QUIET, results will be noisy. Busiest now:"
	ps -eo pcpu=,comm= --sort=-pcpu | sed -n 1,5p | awk '{ printf "    %5s%%  %s\n", $1, $2 }'
fi

# ---------------------------------------------------------------- start
say ""
say "== setup"
start upstream "$BIN/upstream" -addr "127.0.0.1:$P_UP"
"$CTL" wait "http://127.0.0.1:$P_UP/" 10s
start_caddy plain "$P_PLAIN"
start_caddy wxauth "$P_WX"
start_caddy forward_auth "$P_FA"

TOKEN=$("$CTL" login "http://127.0.0.1:$P_WX/wx/login" bench)
say "access token from POST /wx/login {\"code\":\"bench\"} on wxauth: ${#TOKEN} bytes, header $(printf '%s' "${TOKEN%%.*}" | tr '_-' '/+' | base64 -d 2>/dev/null || true)"

if [ "$SIGNING" = ed25519 ]; then
	KEYFILE=$STORE/wxauth/storage/wxauth/signing/ed25519.pem
	[ -s "$KEYFILE" ] || die "no signing key at $KEYFILE"
	start authsvc "$BIN/authsvc" -addr "127.0.0.1:$P_AUTH" -alg ed25519 -key-pem "$KEYFILE"
else
	start authsvc "$BIN/authsvc" -addr "127.0.0.1:$P_AUTH" -alg hs256 -secret-env WXBENCH_SIGNING_KEY
fi
"$CTL" wait "http://127.0.0.1:$P_AUTH/" 10s
alive authsvc

# check NAME PORT: what the upstream sees through this configuration, with
# and without the token. The gated ones must refuse no token with 401 and
# deliver X-WX-OPENID without the Authorization header.
check() {
	local name=$1 port=$2 out status
	out=$("$CTL" get "http://127.0.0.1:$port/__echo" "$TOKEN")
	status=$(head -n1 <<<"$out")
	say "$name: with token -> $status; upstream saw: $(tail -n +2 <<<"$out" | paste -sd ';' | sed 's/;/; /g')"
	[ "$status" = 200 ] || die "$name answered $status with a valid token"
	grep -q '^authorization-present: false' <<<"$out" || die "$name: the token reached the upstream"
	if [ "$name" != plain ]; then
		grep -q '^X-Wx-Openid: ' <<<"$out" || die "$name: no X-WX-OPENID upstream"
		status=$("$CTL" get "http://127.0.0.1:$port/" | sed -n 1p)
		say "$name: without token -> $status"
		[ "$status" = 401 ] || die "$name answered $status without a token"
	fi
	# A wrk run must see the same: a body of "hello".
	out=$("$CTL" get "http://127.0.0.1:$port/" "$TOKEN")
	[ "$(tail -n +2 <<<"$out")" = hello ] || die "$name: GET / with the token: $out"
}
check plain "$P_PLAIN"
check wxauth "$P_WX"
check forward_auth "$P_FA"
openid_wx=$("$CTL" get "http://127.0.0.1:$P_WX/__echo" "$TOKEN" | grep '^X-Wx-Openid')
openid_fa=$("$CTL" get "http://127.0.0.1:$P_FA/__echo" "$TOKEN" | grep '^X-Wx-Openid')
[ "$openid_wx" = "$openid_fa" ] || die "wxauth and forward_auth disagree: $openid_wx vs $openid_fa"

# ---------------------------------------------------------------- measuring
CLK_TCK=$(getconf CLK_TCK)
# cpu_ticks PID...: user+system clock ticks used so far by these processes.
cpu_ticks() {
	local total=0 pid t
	for pid in "$@"; do
		t=$(awk '{print $14 + $15}' "/proc/$pid/stat")
		total=$((total + t))
	done
	echo "$total"
}
# ticks_each PID...: the same, per process, space-separated.
ticks_each() {
	local pid out=""
	for pid in "$@"; do
		out+="$(awk '{print $14 + $15}' "/proc/$pid/stat") "
	done
	echo "${out% }"
}
# pids_of TARGET: its server processes: Caddy, upstream (, authsvc).
pids_of() {
	case $1 in
	plain) echo "${PID[plain]} ${PID[upstream]}" ;;
	wxauth) echo "${PID[wxauth]} ${PID[upstream]}" ;;
	forward_auth) echo "${PID[forward_auth]} ${PID[upstream]} ${PID[authsvc]}" ;;
	login) echo "${PID[login]} ${PID[fakeplatform]}" ;;
	esac
}
port_of() {
	case $1 in
	plain) echo "$P_PLAIN" ;; wxauth) echo "$P_WX" ;; forward_auth) echo "$P_FA" ;;
	esac
}

# parse_wrk FILE: "rps p50_ms p99_ms requests errors" from wrk --latency output.
parse_wrk() {
	awk '
	function ms(v) {
		if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
		if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
		if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
		if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
		return v + 0
	}
	/^ +50% / { p50 = ms($2) }
	/^ +99% / { p99 = ms($2) }
	/ requests in / { req = $1 }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	/Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
	END { printf "%.2f %.3f %.3f %d %d\n", rps, p50, p99, req, err }' "$1"
}

# secs DURATION: wrk duration (10s, 1m) in seconds.
secs() {
	case $1 in
	*ms) awk -v v="${1%ms}" 'BEGIN { print v / 1000 }' ;;
	*s) echo "${1%s}" ;;
	*m) echo "$((${1%m} * 60))" ;;
	*h) echo "$((${1%h} * 3600))" ;;
	*) echo "$1" ;;
	esac
}

# run_wrk OUT ARGS...: run wrk on the load generator's CPUs, output to OUT
# and its CPU seconds (user+system) to OUT.time. wrk runs in the background
# and is waited for, so that a signal reaches the traps at once (bash defers
# traps while a foreground child runs), and cleanup stops it. Its CPU time
# comes from the shell's own `times` (children reaped so far), read before
# and after: no other child of this shell ends in between.
children_cpu() { # FILE: the children's user+system seconds in a `times` output
	awk 'NR == 2 { n = split($0, f, /[ \t]+/); t = 0
		for (i = 1; i <= n; i++) { split(f[i], p, /m/); t += p[1] * 60 + p[2] } print t }' "$1"
}
run_wrk() {
	local out=$1
	shift
	times >"$out.t0" # in this shell, not a subshell: it must see our children
	"${LOADGEN[@]}" wrk "$@" >"$out" 2>&1 &
	PID[wrk]=$!
	wait "${PID[wrk]}" || die "wrk failed: $(cat "$out")"
	unset "PID[wrk]"
	times >"$out.t1"
	awk -v a="$(children_cpu "$out.t0")" -v b="$(children_cpu "$out.t1")" 'BEGIN { print b - a }' >"$out.time"
}

RAW=$WORK/rounds.tsv
: >"$RAW"
# load TARGET ROUND DURATION: one wrk run; appends a line to $RAW unless
# ROUND is "warmup".
load() {
	local target=$1 round=$2 dur=$3 port pids before after wrk_cpu out
	port=$(port_of "$target")
	pids=$(pids_of "$target")
	out=$WORK/wrk-$target-$round.txt
	# shellcheck disable=SC2086
	before=$(cpu_ticks $pids)
	local m_before m_after e_before e_after
	# shellcheck disable=SC2086
	e_before=$(ticks_each $pids)
	m_before=$(machine_ticks)
	run_wrk "$out" -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency \
		-H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$port/"
	# shellcheck disable=SC2086
	after=$(cpu_ticks $pids)
	# shellcheck disable=SC2086
	e_after=$(ticks_each $pids)
	m_after=$(machine_ticks)
	alive "$target"
	[ "$round" = warmup ] && return 0
	read -r rps p50 p99 req err < <(parse_wrk "$out")
	wrk_cpu=$(cat "$out.time")
	local d
	d=$(secs "$dur")
	# server CPU us per request, server cores busy, wrk cores busy, and the
	# cores busy with anything else on the machine meanwhile
	awk -v t="$target" -v r="$round" -v rps="$rps" -v p50="$p50" -v p99="$p99" -v req="$req" \
		-v err="$err" -v ticks=$((after - before)) -v hz="$CLK_TCK" -v d="$d" -v wc="$wrk_cpu" \
		-v mt=$((m_after - m_before)) -v eb="$e_before" -v ea="$e_after" \
		'BEGIN { cpu = ticks / hz; other = mt / hz - cpu - wc; if (other < 0) other = 0
			n = split(eb, b, " "); split(ea, a, " "); split("0 0 0", x, " ")
			for (i = 1; i <= n; i++) x[i] = (req > 0 ? (a[i] - b[i]) / hz * 1e6 / req : 0)
			printf "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.1f\t%.1f\t%.1f\n", t, r, rps, p50, p99, req, err, (req > 0 ? cpu * 1e6 / req : 0), cpu / d, wc / d, other / d, x[1], x[2], x[3] }' >>"$RAW"
	tail -n1 "$RAW" | awk -F'\t' '{ printf "  round %s %-13s %7.0f req/s  p50 %7.3f ms  p99 %7.3f ms  err %d  server CPU %6.1f us/req, %.2f cores  wrk %.2f cores  other %.2f cores%s\n", $2, $1, $3, $4, $5, $7, $8, $9, $10, $11, ($11 > 0.15 ? "  <- busy machine" : "") }'
}

gate_phase() {
TARGETS=(plain wxauth forward_auth)
say ""
say "== gate: wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, warm-up $WARMUP per target"
for t in "${TARGETS[@]}"; do
	load "$t" warmup "$WARMUP"
done
for ((r = 1; r <= ROUNDS; r++)); do
	for ((i = 0; i < ${#TARGETS[@]}; i++)); do
		t=${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}
		load "$t" "$r" "$DURATION"
	done
done

say ""
say "== gate: median over $ROUNDS rounds (ratios against plain reverse_proxy)"
awk -F'\t' '
function median(list,   n, a, i, j, tmp) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { tmp = a[j]; a[j] = a[j - 1]; a[j - 1] = tmp }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5; cpu[$1] = cpu[$1] " " $8; core[$1] = core[$1] " " $9; err[$1] += $7; oth = oth " " $11; if ($11 > maxo) maxo = $11
  cc[$1] = cc[$1] " " $12; cu[$1] = cu[$1] " " $13; ca[$1] = ca[$1] " " $14 }
END {
	n = split("plain wxauth forward_auth", ts, " ")
	for (i = 1; i <= n; i++) { t = ts[i]; R[t] = median(rps[t]); P50[t] = median(p50[t]); P99[t] = median(p99[t]); C[t] = median(cpu[t]); K[t] = median(core[t]) }
	printf "%-13s %10s %9s %9s %12s %12s %12s %14s %13s %7s\n", "target", "req/s", "p50 ms", "p99 ms", "req/s ratio", "p50 vs plain", "p99 vs plain", "srv CPU us/req", "CPU vs plain", "errors"
	for (i = 1; i <= n; i++) {
		t = ts[i]
		printf "%-13s %10.0f %9.3f %9.3f %12.3f %+11.1f%% %+11.1f%% %14.1f %+12.1f %7d\n", t, R[t], P50[t], P99[t], R[t] / R["plain"], (P50[t] / P50["plain"] - 1) * 100, (P99[t] / P99["plain"] - 1) * 100, C[t], C[t] - C["plain"], err[t]
	}
	printf "server CPU = Caddy + upstream (+ authsvc for forward_auth) per request; median cores busy: plain %.2f, wxauth %.2f, forward_auth %.2f\n", K["plain"], K["wxauth"], K["forward_auth"]
	printf "server CPU split, us/req (median):"
	for (i = 1; i <= n; i++) { t = ts[i]; printf "%s %s: Caddy %.1f + upstream %.1f%s", (i > 1 ? ";" : ""), t, median(cc[t]), median(cu[t]), (t == "forward_auth" ? sprintf(" + authsvc %.1f", median(ca[t])) : "") }
	printf "\n"
	printf "other processes during the rounds: median %.2f cores, at most %.2f%s\n", median(oth), maxo, (maxo > 0.15 ? " (the machine was not quiet: treat small differences with care)" : "")
}' "$RAW"
}


# ---------------------------------------------------------------- logins
login_phase() {
say ""
say "== logins: wrk -t$THREADS -c$LOGIN_CONNECTIONS -d$LOGIN_DURATION -s bench/login.lua (each code posted $LOGIN_REPEAT times), platform latency $PLATFORM_LATENCY"
# The gate targets are done: stop them so the login run has the CPUs alone.
for name in plain wxauth forward_auth authsvc; do
	kill -TERM "${PID[$name]}" 2>/dev/null || true
	wait "${PID[$name]}" 2>/dev/null || true
	unset "PID[$name]"
done
start fakeplatform "$BIN/fakeplatform" -addr "127.0.0.1:$P_FAKE" -appid wxbench0000000002 \
	-secret-env WXBENCH_SECRET -latency "$PLATFORM_LATENCY"
"$CTL" wait "http://127.0.0.1:$P_FAKE/stats" 10s
start_caddy login "$P_LOGIN"
FAKE=http://127.0.0.1:$P_FAKE
probe=$("$CTL" login "http://127.0.0.1:$P_LOGIN/wx/login" probe-1)
probe2=$("$CTL" login "http://127.0.0.1:$P_LOGIN/wx/login" probe-1)
[ -n "$probe" ] && [ -n "$probe2" ] && [ "$probe" != "$probe2" ] || die "login probe failed"
calls=$("$CTL" get "$FAKE/stats?format=text" | sed -n 's/^calls=//p')
[ "$calls" = 1 ] || die "two logins with one code made $calls platform calls"
say "probe: code posted twice -> two sessions, 1 platform call"

run_login() {
	local prefix=$1 dur=$2 out=$WORK/wrk-login-$1.txt
	run_wrk "$out" -t"$THREADS" -c"$LOGIN_CONNECTIONS" -d"$dur" --latency \
		-s "$ROOT/bench/login.lua" "http://127.0.0.1:$P_LOGIN/" -- "$prefix" "$LOGIN_REPEAT"
	alive login
}
run_login w "$LOGIN_WARMUP"
sleep 1
"$CTL" post "$FAKE/reset"
# shellcheck disable=SC2046
before=$(cpu_ticks $(pids_of login))
m_before=$(machine_ticks)
run_login m "$LOGIN_DURATION"
# Requests still in flight when wrk stopped finish within the platform latency.
sleep 1
# shellcheck disable=SC2046
after=$(cpu_ticks $(pids_of login))
m_after=$(machine_ticks)
OUT=$WORK/wrk-login-m.txt
read -r rps p50 p99 req err < <(parse_wrk "$OUT")
lua=$(grep '^LOGIN ' "$OUT" || true)
[ -n "$lua" ] || die "login.lua printed no summary: $(cat "$OUT")"
declare -A L=() S=()
for kv in ${lua#LOGIN }; do L[${kv%%=*}]=${kv#*=}; done
while IFS='=' read -r k v; do S[$k]=$v; done < <("$CTL" get "$FAKE/stats?format=text" | tail -n +2)
d=$(secs "$LOGIN_DURATION")
awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v calls="${S[calls]}" -v d="$d" -v ticks=$((after - before)) \
	-v hz="$CLK_TCK" -v req="$req" -v wc="$(cat "$OUT.time")" -v lat="$PLATFORM_LATENCY" -v mt=$((m_after - m_before)) 'BEGIN {
	printf "logins/s:   %.0f posts/s answered (%.0f new codes/s reaching the platform)\n", rps, calls / d
	printf "latency:    p50 %.3f ms, p99 %.3f ms (the platform alone takes %s per new code)\n", p50, p99, lat
	other = (mt / hz - ticks / hz - wc) / (d + 1); if (other < 0) other = 0
	printf "CPU:        Caddy + fake platform %.2f cores, %.0f us per answered post; wrk %.2f cores; other processes %.2f cores\n", ticks / hz / d, (req > 0 ? ticks / hz * 1e6 / req : 0), wc / d, other
}'
say "answers:    ${L[ok]} x 200, ${L[s4xx]} x 4xx, ${L[s5xx]} x 5xx, ${L[other]} other; wrk errors (non-2xx + socket): $err"
say "codes:      ${L[posts]} posts of ${L[distinct]} distinct codes (each $LOGIN_REPEAT times); $((L[posts] - L[ok] - L[s4xx] - L[s5xx] - L[other])) posts unanswered when wrk stopped (in flight)"
say "platform:   ${S[calls]} code2session calls for ${S[distinct_codes]} distinct codes; at most ${S[max_calls_per_code]} call per code; ${S[codes_repeated]} codes asked twice (40163); ${S[rejected]} rejected; ${S[connections]} TCP connections opened to it"
verdict=PASS
reason="one platform call per distinct code"
if [ "${S[max_calls_per_code]}" != 1 ] || [ "${S[codes_repeated]}" != 0 ] || [ "${S[calls]}" != "${S[distinct_codes]}" ]; then
	verdict=FAIL reason="some code was exchanged more than once"
elif [ "${S[distinct_codes]}" -gt "${L[distinct]}" ]; then
	verdict=FAIL reason="the platform saw codes that were never posted"
elif [ $((L[distinct] - S[distinct_codes])) -gt "$LOGIN_CONNECTIONS" ]; then
	verdict=FAIL reason="$((L[distinct] - S[distinct_codes])) posted codes never reached the platform"
elif [ "${L[s4xx]}" != 0 ] || [ "${L[s5xx]}" != 0 ] || [ "${L[other]}" != 0 ]; then
	verdict=FAIL reason="some logins were refused"
fi
say "idempotency: $verdict: $reason (distinct codes posted ${L[distinct]}, platform calls ${S[calls]}, distinct codes at the platform ${S[distinct_codes]}; a difference of at most the connection count is codes cut off when wrk stopped)"
}

verdict=PASS
# (if, not ||: set -e does not apply inside a function called left of ||)
if [ "$GATE" != 0 ]; then gate_phase; fi
if [ "$LOGIN" != 0 ]; then login_phase; fi

say ""
say "== done in $SECONDS s"
[ "$verdict" = PASS ]
