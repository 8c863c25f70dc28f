#!/usr/bin/env bash
# Hostile clients against `remotelog serve` at full size (see README.md here and
# tests/attack.rs): 100 bodies and 100 request heads sent one byte a second, 100 idle
# keep-alive connections, six 256 MiB bodies to read endpoints without a token, and a
# decompression bomb (36 objects of 64 MiB in about 150 KB) from a writer, while a normal
# client asks for /healthz, pushes one message and reads the log every half second.
# Prints the normal client's latencies, what became of each attack and the server's peak
# RSS.
#
# Environment: REMOTELOG (the server binary to attack; default: this tree's build in
# the profiling profile: release with line tables), ATTACKS (comma-separated subset of
# slow-bodies,slow-heads,idle,floods,bomb; default all), DURATION (seconds the normal
# client runs, default 20), SERVE_ARGS (extra options for serve), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --profile profiling --quiet --bin remotelog --example http_attack
R=${REMOTELOG:-$CARGO_TARGET_DIR/profiling/remotelog}
ATTACK=$CARGO_TARGET_DIR/profiling/examples/http_attack
ATTACKS=${ATTACKS:-slow-bodies,slow-heads,idle,floods,bomb}
DURATION=${DURATION:-20}
W=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT

echo "== machine: $(nproc) cores, $(uname -sr); server: $R"
echo "== attacks: $ATTACKS"
"$R" --store "$W/srv" init >/dev/null
head -c 24 /dev/urandom | base64 > "$W/token"
# shellcheck disable=SC2086
"$R" --store "$W/srv" serve --listen 127.0.0.1:0 --token-file "$W/token" ${SERVE_ARGS:-} \
    2>"$W/serve.log" &
PID=$!
for _ in $(seq 100); do grep -q "serving" "$W/serve.log" 2>/dev/null && break; sleep 0.05; done
URL=$(grep -o 'http://[0-9.:]*' "$W/serve.log" | head -1)
"$ATTACK" "$URL" "$PID" "$(cat "$W/token")" "$ATTACKS" "$DURATION"
kill -0 "$PID" 2>/dev/null && echo "server: still running" || echo "server: DIED"
