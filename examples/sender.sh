#!/usr/bin/env bash
# A sending node: appends a message and pushes it to the shared remote, in a loop.
# The remote is a directory standing in for the CAS (objects/) and the NS (refs/), or the
# URL of a `remotelog serve` — also `remotelog serve --mock PROFILE`, a remote that answers
# as IPFS, IPNS, S3... would (docs/remote-log-mocking.md). A push that fails (a mocked
# timeout, 503 Slow Down) is said and left to the next round's push.
#   usage: sender.sh STORE REMOTE_DIR_OR_URL [ROUNDS] [SECONDS_BETWEEN]
# Set REMOTELOG to the binary to use (default: remotelog on PATH). REMOTELOG_ACTOR names
# this node to serve --mock (default: the store's name).
set -euo pipefail
store=$1 remote=$2 rounds=${3:-10} pause=${4:-1}
rl=${REMOTELOG:-remotelog}
export REMOTELOG_ACTOR=${REMOTELOG_ACTOR:-$(basename "$store")}
[ -f "$store/config" ] || "$rl" init "$store" >/dev/null
"$rl" --store "$store" remote list | grep -q '^origin' || "$rl" --store "$store" remote add origin "$remote" >/dev/null
for i in $(seq 1 "$rounds"); do
  printf 'round %s from %s at %s' "$i" "$(basename "$store")" "$(date +%T.%N)" |
    "$rl" --store "$store" append --group example >/dev/null
  # CAS first (objects), then NS (the ref): push does both in that order.
  if err=$("$rl" --store "$store" push --quiet 2>&1 >/dev/null); then
    echo "sender: published round $i"
  else
    echo "sender: round $i not published yet (${err#remotelog: error: })"
  fi
  sleep "$pause"
done
