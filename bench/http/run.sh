#!/usr/bin/env bash
# HTTP benchmark: CAS get/add requests per second with 50 keep-alive connections, next to
# `python3 -m http.server` serving the same bytes in the same run; push and clone of
# 100,000 messages over HTTP next to the same over a directory. See README.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --profile profiling --quiet --bin remotelog --example http_load
R=$CARGO_TARGET_DIR/profiling/remotelog
LOAD=$CARGO_TARGET_DIR/profiling/examples/http_load
CONNS=${CONNS:-50}
N=${N:-400}
MESSAGES=${MESSAGES:-100000}
W=$(mktemp -d)
cleanup() { kill "${PIDS[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$W"; }
PIDS=()
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return; sleep 0.05; done; }

echo "== machine: $(nproc) cores, $(uname -sr)"
$R --store "$W/srv" init >/dev/null
P1=$(free_port)
$R --store "$W/srv" serve --listen 127.0.0.1:"$P1" --max-concurrency 64 2>"$W/serve.log" & PIDS+=($!)
wait_port "$P1"
head -c 1024 /dev/urandom > "$W/blob"
ID=$(curl -s --data-binary @"$W/blob" http://127.0.0.1:"$P1"/cas)
mkdir "$W/static" && cp "$W/blob" "$W/static/$ID"
P2=$(free_port)
(cd "$W/static" && exec python3 -m http.server --protocol HTTP/1.1 --bind 127.0.0.1 "$P2" >/dev/null 2>&1) & PIDS+=($!)
wait_port "$P2"

echo "== 1 KiB object, $CONNS keep-alive connections x $N requests"
echo -n "remotelog GET /cas/<id>:        "; $LOAD get "http://127.0.0.1:$P1/cas/$ID" "$CONNS" "$N"
echo -n "python3 -m http.server GET:     "; $LOAD get "http://127.0.0.1:$P2/$ID" "$CONNS" "$N"
P4=$(free_port)
(cd "$W/static" && exec python3 -m http.server --bind 127.0.0.1 "$P4" >/dev/null 2>&1) & PIDS+=($!)
wait_port "$P4"
echo -n "python3 -m http.server HTTP/1.0: "; $LOAD get "http://127.0.0.1:$P4/$ID" "$CONNS" "$N"
echo -n "remotelog POST /cas (new 1 KiB): "; $LOAD add "http://127.0.0.1:$P1" "$CONNS" "$N" 1024

echo "== push and clone of $MESSAGES messages"
$R --store "$W/a" init >/dev/null
python3 - "$W/in" "$MESSAGES" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    sub = os.path.join(d, "%03d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(sub)
    with open(os.path.join(sub, "%06d" % i), "w") as f:
        f.write("message %d %s" % (i, "x" * (i % 200)))
PY
$R --store "$W/a" append --group bench --dir "$W/in" >/dev/null
$R --store "$W/srv2" init >/dev/null
P3=$(free_port)
$R --store "$W/srv2" serve --listen 127.0.0.1:"$P3" 2>/dev/null & PIDS+=($!)
wait_port "$P3"
$R --store "$W/a" remote add dir "$W/dirremote" >/dev/null
$R --store "$W/a" remote add http http://127.0.0.1:"$P3" >/dev/null
t() { local s; s=$(date +%s.%N); "$@" >/dev/null; echo "$(echo "$(date +%s.%N) - $s" | bc) s"; }
echo "push to a directory:   $(t $R --store "$W/a" --quiet push dir)"
echo "push over HTTP:        $(t $R --store "$W/a" --quiet push http)"
echo "clone from directory:  $(t $R --quiet clone "$W/dirremote" "$W/c1")"
echo "clone over HTTP:       $(t $R --quiet clone http://127.0.0.1:"$P3" "$W/c2")"
cmp <($R --store "$W/c1" log --json) <($R --store "$W/c2" log --json) && echo "clones identical: yes"
