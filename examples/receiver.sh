#!/usr/bin/env bash
# A receiving node: pulls from the shared remote in a loop and prints what is new.
# It reads the NS (the remote's ref) first, then fetches from the CAS what it lacks.
# The remote is a directory or the URL of a `remotelog serve` (also `serve --mock
# PROFILE`: then the NS may answer late or stale, and a pull may fail; the next round
# tries again).
#   usage: receiver.sh STORE REMOTE_DIR_OR_URL [ROUNDS] [SECONDS_BETWEEN]
# Set REMOTELOG to the binary to use (default: remotelog on PATH). REMOTELOG_ACTOR names
# this node to serve --mock (default: the store's name).
set -euo pipefail
store=$1 remote=$2 rounds=${3:-10} pause=${4:-1}
rl=${REMOTELOG:-remotelog}
name=$(basename "$store")
export REMOTELOG_ACTOR=${REMOTELOG_ACTOR:-$name}
case $remote in
  http://* | https://*) url=1 ;;
  *) url= ;;
esac
seen=0
for _ in $(seq 1 "$rounds"); do
  if [ -n "$url" ]; then
    # A URL: pull; a log the remote's NS does not name yet is simply not pulled.
    if [ ! -f "$store/config" ]; then
      "$rl" init "$store" >/dev/null
      "$rl" --store "$store" remote add origin "$remote" >/dev/null
    fi
    if ! err=$("$rl" --store "$store" pull --quiet 2>&1 >/dev/null); then
      echo "$name: pull failed, trying again next round (${err#remotelog: error: })"
    fi
    if ! "$rl" --store "$store" log >/dev/null 2>&1; then
      echo "$name: remote not there yet"; sleep "$pause"; continue
    fi
  elif [ ! -f "$store/config" ]; then
    # The remote is there once its NS names the log: a store without it yet (the sender's
    # first push is under way) would clone to a store without the log.
    if [ -f "$remote/refs/logs/main" ]; then
      "$rl" clone --quiet "$remote" "$store" >/dev/null
    else
      echo "$name: remote not there yet"; sleep "$pause"; continue
    fi
  else
    "$rl" --store "$store" pull --quiet >/dev/null
  fi
  # `log` is newest first: print the entries beyond those already seen, oldest first.
  total=$("$rl" --store "$store" log | wc -l)
  if [ "$total" -gt "$seen" ]; then
    "$rl" --store "$store" log | head -n $((total - seen)) | tac | while read -r h1 _; do
      echo "$name: new ${h1:0:12} $("$rl" --store "$store" cat "$h1")"
    done
    seen=$total
  fi
  sleep "$pause"
done
