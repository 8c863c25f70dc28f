#!/usr/bin/env bash
# A sending node: appends a message and pushes it to the shared remote, in a loop.
# The remote directory stands in for the CAS (objects/) and the NS (refs/).
#   usage: sender.sh STORE REMOTE_DIR [ROUNDS] [SECONDS_BETWEEN]
# Set REMOTELOG to the binary to use (default: remotelog on PATH).
set -euo pipefail
store=$1 remote=$2 rounds=${3:-10} pause=${4:-1}
rl=${REMOTELOG:-remotelog}
[ -f "$store/config" ] || "$rl" init "$store" >/dev/null
"$rl" --store "$store" remote list | grep -q '^origin' || "$rl" --store "$store" remote add origin "$remote" >/dev/null
for i in $(seq 1 "$rounds"); do
  printf 'round %s from %s at %s' "$i" "$(basename "$store")" "$(date +%T.%N)" |
    "$rl" --store "$store" append --group example >/dev/null
  # CAS first (objects), then NS (the ref): push does both in that order.
  "$rl" --store "$store" push --quiet >/dev/null
  echo "sender: published round $i"
  sleep "$pause"
done
