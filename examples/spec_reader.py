#!/usr/bin/env python3
"""Bob: reads a 3/REMOTE-LOG log knowing only the spec and the .proto files.

    python3 examples/spec_reader.py http://127.0.0.1:8001 main [--actor bob] [--timing]

Follows the log from the NS to the CAS: NS Fetch(name) gives the newest RemoteLog page;
each `tail` is fetched with CAS Get. Every page and payload fetched must hash (BLAKE3-256)
to the address asked for, embedded `data` to its remoteHash, and every payload's H1 must
equal its localHash. Prints the bodies oldest first, one per line; a summary on stderr.
Exit status 1 on any mismatch, naming the page and entry.

Against `remotelog serve --mock PROFILE`, --actor names this reader (its own resolver
cache, its own view of what is visible yet) and --timing prints how long the NS Fetch and
the CAS Gets took on stderr: a stale name comes back at once from the cache, a fresh one
as slowly as the profile's resolver.
"""

import argparse
import sys
import time

from spec_wire import Client, TwirpError, blake3, decode_message, decode_remote_log, h1

MAX_PAGES = 1_000_000


def read_log(client, name, timing=None):
    """[(group_id, timestamp, body)] oldest first, and the number of pages. timing, a
    dict, gets the seconds the NS Fetch ("fetch") and all CAS Gets ("gets") took."""
    started = time.monotonic()
    page, pages, entries, seen = client.fetch(name), 0, [], set()
    fetched = time.monotonic()
    while True:
        pages += 1
        where = "page %d" % pages
        try:
            pairs, tail = decode_remote_log(page)
        except ValueError as e:
            raise SystemExit("%s: not a RemoteLog (%s)" % (where, e))
        for i, (remote, local, data) in enumerate(pairs):
            at = "%s entry %d" % (where, i)
            if len(remote) != 32 or len(local) != 32:
                raise SystemExit("%s: remoteHash/localHash missing or not 32 bytes" % at)
            if data and blake3(data) != remote:
                raise SystemExit("%s: embedded data does not hash to remoteHash" % at)
            payload = data or client.get(remote)
            if blake3(payload) != remote:
                raise SystemExit("%s: CAS Get(%s) returned other bytes" % (at, remote.hex()))
            msg = decode_message(payload)
            if h1(*msg) != local:
                raise SystemExit("%s: H1 of the payload is not localHash %s" % (at, local.hex()))
            entries.append(msg)
        if not tail:
            break
        if tail in seen or pages >= MAX_PAGES:
            raise SystemExit("%s: the tails form a cycle or run on too long" % where)
        seen.add(tail)
        page = client.get(tail)
        if blake3(page) != tail:
            raise SystemExit("page %d: CAS Get(%s) returned other bytes" % (pages + 1, tail.hex()))
    entries.reverse()
    if timing is not None:
        timing["fetch"] = fetched - started
        timing["gets"] = time.monotonic() - fetched
    return entries, pages


def main():
    ap = argparse.ArgumentParser(usage="spec_reader.py URL NAME [--actor NAME] [--timing]")
    ap.add_argument("url")
    ap.add_argument("name")
    ap.add_argument("--actor", help="who this reader is to serve --mock (default: REMOTELOG_ACTOR)")
    ap.add_argument("--timing", action="store_true", help="print the time of the fetch and gets")
    a = ap.parse_args()
    timing = {}
    try:
        entries, pages = read_log(Client(a.url, actor=a.actor), a.name, timing)
    except TwirpError as e:
        raise SystemExit("spec_reader: %s" % e)
    out = sys.stdout.buffer
    for _group, _ts, body in entries:
        out.write(body + b"\n")
    print("%d messages in %d pages, every hash checked" % (len(entries), pages), file=sys.stderr)
    if a.timing:
        print("NS Fetch(%s) took %.3f s; CAS Gets %.3f s" % (a.name, timing["fetch"], timing["gets"]),
              file=sys.stderr)


if __name__ == "__main__":
    main()
