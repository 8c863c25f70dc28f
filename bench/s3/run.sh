#!/usr/bin/env bash
# Object-storage benchmark: push and clone of 100,000 messages to and from a prefix in a
# SeaweedFS bucket, beside the same to and from a directory remote and beside `rclone copy`
# of the same bytes (the directory remote's files) to and from the same bucket, in one run;
# wall time and peak memory from /usr/bin/time -v, medians over RUNS; requests per push
# counted by a proxy (count_proxy.py). See README.md here.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
MESSAGES=${MESSAGES:-100000}
RUNS=${RUNS:-3}
command -v rclone >/dev/null || { echo "bench/s3: needs rclone (apt-get install -y rclone)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench/s3: needs /usr/bin/time (apt-get install -y time)" >&2; exit 1; }
cargo build --release --quiet --bin remotelog
R=$CARGO_TARGET_DIR/release/remotelog
W=$(mktemp -d)
PIDS=()
cleanup() {
  kill "${PIDS[@]}" 2>/dev/null || true
  scripts/seaweedfs.sh stop "$W/weed" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

scripts/seaweedfs.sh start "$W/weed" $$ >/dev/null
set -a; . "$W/weed/env"; set +a
B=$REMOTELOG_S3_BUCKET
export RCLONE_CONFIG_SW_TYPE=s3 RCLONE_CONFIG_SW_PROVIDER=SeaweedFS \
  RCLONE_CONFIG_SW_ENDPOINT=$AWS_ENDPOINT_URL RCLONE_CONFIG_SW_REGION=$AWS_REGION \
  RCLONE_CONFIG_SW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID \
  RCLONE_CONFIG_SW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY RCLONE_CONFIG_SW_FORCE_PATH_STYLE=true
# rclone 1.60's S3 client refuses any AWS_CA_BUNDLE ("HTTPClient's transport unsupported
# type"); the store is plain http on loopback, so none is needed.
unset AWS_CA_BUNDLE

echo "== machine: $(nproc) cores, $(uname -sr); SeaweedFS $(basename "$(dirname "$(dirname "$(readlink -f "$HOME/.cache/remotelog/seaweedfs-4.48/bin/weed" 2>/dev/null || echo x/x/x)")")") at $AWS_ENDPOINT_URL; $(rclone version | head -1)"
echo "== $MESSAGES messages (bodies of 10-210 bytes), $RUNS runs"
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
$R --store "$W/a" init >/dev/null
$R --store "$W/a" --quiet append --group bench --dir "$W/in" >/dev/null

# measure NAME CMD...: runs CMD under /usr/bin/time -v, appends "NAME seconds peak_kib".
measure() {
  local name=$1; shift
  if ! /usr/bin/time -v -o "$W/time" "$@" >/dev/null 2>"$W/err"; then
    echo "bench/s3: $name failed:" >&2; cat "$W/err" "$W/time" >&2; exit 1
  fi
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,p,":"); s=0; for(i=1;i<=n;i++) s=s*60+p[i]; print s}' "$W/time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time")
  echo "$name $wall $rss" >>"$W/results"
}

for r in $(seq 1 "$RUNS"); do
  $R --store "$W/a" remote add "dir$r" "$W/dir$r" >/dev/null
  $R --store "$W/a" remote add "s3$r" "s3://$B/bench$r" >/dev/null
  measure "push-dir" $R --store "$W/a" --quiet push "dir$r"
  measure "push-s3" $R --store "$W/a" --quiet push "s3$r"
  measure "rclone-up" rclone copy "$W/dir$r" "sw:$B/rclone$r"
  measure "clone-dir" $R --quiet clone "$W/dir$r" "$W/cd$r"
  measure "clone-s3" $R --quiet clone "s3://$B/bench$r" "$W/cs$r"
  measure "rclone-down" rclone copy "sw:$B/rclone$r" "$W/rd$r"
  cmp <($R --store "$W/cd$r" log --json) <($R --store "$W/cs$r" log --json)
  # rclone keeps no empty folders; every file must come back the same.
  sums() { (cd "$1" && find . -type f -exec sha256sum {} + | sort); }
  cmp <(sums "$W/dir$r") <(sums "$W/rd$r") || { echo "bench/s3: rclone's round trip differs" >&2; exit 1; }
  rm -rf "$W/cd$r" "$W/cs$r" "$W/rd$r"
done
bytes=$(du -sb "$W/dir1" | cut -f1)
files=$(find "$W/dir1" -type f | wc -l)

# Requests, through a counting proxy, on a prefix of their own.
python3 bench/s3/count_proxy.py "${AWS_ENDPOINT_URL##*:}" "$W/pport" "$W/counts" & PIDS+=($!)
for _ in $(seq 100); do [ -s "$W/pport" ] && break; sleep 0.05; done
PROXY=http://127.0.0.1:$(cat "$W/pport")
snap() { cp "$W/counts" "$W/counts.$1" 2>/dev/null || : >"$W/counts.$1"; }
# requests A B: the requests between snapshots A and B, "N (n METHOD, ...)".
requests() {
  awk 'FNR==NR {a[$1]=$2; next} {d=$2-a[$1]; if (d>0) {t+=d; s=s (s?", ":"") d " " $1}} END {printf "%d (%s)", t, s}' \
    "$W/counts.$1" "$W/counts.$2"
}
$R --store "$W/a" remote add counted "s3://$B/counted?endpoint=$PROXY" >/dev/null
snap 0
$R --store "$W/a" --quiet push counted >/dev/null
snap 1
echo "one more message" | $R --store "$W/a" append --group bench >/dev/null
$R --store "$W/a" --quiet push counted >/dev/null
snap 2
$R --quiet clone "s3://$B/counted?endpoint=$PROXY" "$W/cc" >/dev/null
snap 3
first_push=$(requests 0 1); next_push=$(requests 1 2); clone_requests=$(requests 2 3)

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
row() {
  local name=$1 label=$2 extra=${3:-}
  local t m
  t=$(awk -v n="$name" '$1==n {print $2}' "$W/results" | median)
  m=$(awk -v n="$name" '$1==n {print $3}' "$W/results" | median)
  printf '| %s | %.2f s | %d MiB | %s |\n' "$label" "$t" "$((m / 1024))" "$extra"
}
echo
echo "remote: $files files, $bytes bytes (the directory remote after one push)"
echo
echo "| what | wall (median of $RUNS) | peak RSS (median) | requests |"
echo "|---|---|---|---|"
row push-dir "push to a directory" "-"
row push-s3 "push to s3:// (SeaweedFS)" "$first_push; the next push of 1 message: $next_push"
row rclone-up "\`rclone copy\` of the same files up" "-"
row clone-dir "clone from a directory" "-"
row clone-s3 "clone from s3://" "$clone_requests"
row rclone-down "\`rclone copy\` of the same files down" "-"
