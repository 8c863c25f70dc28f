#!/bin/sh
# Times two remotelog binaries side by side on the same corpus: append --dir, push to an
# empty directory remote, clone, check --read-data. The runs alternate (A B A B ...) so that
# a drift in the machine's speed falls on both; see README.md beside this script.
#
# usage: bench/before-after/run.sh BINARY_A BINARY_B [RUNS]
# env:   BENCH_N (messages, default 100000), BENCH_DIR (scratch, default a new mktemp -d),
#        BENCH_CORPUS (an existing corpus directory to reuse instead of generating one)
set -eu

a=$1
b=$2
runs=${3:-5}
n=${BENCH_N:-100000}
here=$(cd "$(dirname "$0")" && pwd)
dir=${BENCH_DIR:-$(mktemp -d)}
corpus=${BENCH_CORPUS:-$dir/corpus}

for bin in "$a" "$b"; do
    [ -x "$bin" ] || { echo "run.sh: $bin is not an executable file" >&2; exit 2; }
done
if [ ! -d "$corpus" ]; then
    echo "run.sh: generating $n messages in $corpus (not timed)" >&2
    python3 "$here/corpus.py" "$corpus" "$n"
fi
find "$corpus" -type f -exec cat {} + > /dev/null  # warm the page cache once

results=$dir/results.tsv
: > "$results"

# timed LABEL WHICH RUN CMD...: runs CMD after a sync, appends "label which run wall cpu rss".
timed() {
    label=$1 which=$2 run=$3
    shift 3
    sync
    /usr/bin/time -f "%e %U %S %M" -o "$dir/time.out" "$@" > /dev/null 2> "$dir/stderr.out" || {
        echo "run.sh: $label with $which failed:" >&2
        cat "$dir/stderr.out" >&2
        exit 1
    }
    read -r wall user sys rss < "$dir/time.out"
    cpu=$(echo "$user + $sys" | bc)
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$which" "$run" "$wall" "$cpu" "$rss" >> "$results"
}

one_run() {  # one_run A|B BINARY RUN
    which=$1 bin=$2 run=$3
    w=$dir/$which-$run
    rm -rf "$w"
    mkdir -p "$w/remote"
    "$bin" --store "$w/store" init > /dev/null
    timed append "$which" "$run" "$bin" --store "$w/store" append --group bench \
        --timestamp 1700000000 --dir "$corpus"
    "$bin" --store "$w/store" remote add origin "$w/remote" > /dev/null
    timed push "$which" "$run" "$bin" --store "$w/store" push
    timed clone "$which" "$run" "$bin" clone "$w/remote" "$w/clone"
    timed check "$which" "$run" "$bin" --store "$w/clone" check --read-data
    rm -rf "$w"
}

i=1
while [ "$i" -le "$runs" ]; do
    echo "run.sh: run $i/$runs (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    one_run A "$a" "$i"
    one_run B "$b" "$i"
    i=$((i + 1))
done

python3 - "$results" "$a" "$b" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
print(f"A = {sys.argv[2]}\nB = {sys.argv[3]}\n")
print("| operation | A wall, median (min–max) | B wall, median (min–max) | A/B, median of pairs | A CPU | B CPU | A peak RSS | B peak RSS |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for op in ["append", "push", "clone", "check"]:
    get = lambda w, col: {int(r[2]): float(r[col]) for r in rows if r[0] == op and r[1] == w}
    wa, wb = get("A", 3), get("B", 3)
    ca, cb = get("A", 4), get("B", 4)
    ra, rb = get("A", 5), get("B", 5)
    ratio = statistics.median(wa[k] / wb[k] for k in wa if wb.get(k))
    span = lambda d: f"{statistics.median(d.values()):.2f} s ({min(d.values()):.2f}–{max(d.values()):.2f})"
    med = lambda d: statistics.median(d.values())
    print(f"| {op} | {span(wa)} | {span(wb)} | {ratio:.3f} | {med(ca):.2f} s | {med(cb):.2f} s "
          f"| {med(ra)/1024:.0f} MB | {med(rb)/1024:.0f} MB |")
PY
