#!/usr/bin/env python3
"""Alice's spec-only twin: publishes messages as 3/REMOTE-LOG describes.

    python3 examples/spec_writer.py http://127.0.0.1:8001 chat --group g1 one two three

Each argument (or each line of stdin when there is none) is the body of one
vac.mvds.Message. The writer Adds every payload to the CAS, then the new RemoteLog pages
(oldest first; at most --page-size pairs each, the newest --embed pairs of each page
carrying their payload in `data`), each page's `tail` the address of the page before,
and finally points the name at the newest page with NS Update. An existing log of that
name is continued: its head page becomes the tail of the first new page.

Against `remotelog serve --mock PROFILE`, --actor names this writer (default:
REMOTELOG_ACTOR): a writer sees its own updates at once, other actors as the profile says.
"""

import argparse
import sys
import time

from spec_wire import Client, TwirpError, blake3, encode_message, encode_remote_log, h1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("name")
    ap.add_argument("bodies", nargs="*")
    ap.add_argument("--group", default="spec")
    ap.add_argument("--timestamp", type=int, default=None, help="default: now, in ms")
    ap.add_argument("--page-size", type=int, default=3)
    ap.add_argument("--embed", type=int, default=1)
    ap.add_argument("--actor", help="who this writer is to serve --mock (default: REMOTELOG_ACTOR)")
    a = ap.parse_intermixed_args()
    bodies = [b.encode() for b in a.bodies] or [l.rstrip(b"\n") for l in sys.stdin.buffer]
    ts = a.timestamp if a.timestamp is not None else int(time.time() * 1000)
    c = Client(a.url, actor=a.actor)
    try:
        try:
            head = c.fetch(a.name)
            tail = c.add(head)  # the current head page, as a CAS object
        except TwirpError as e:
            if e.code != "not_found":
                raise
            tail = b""
        pairs = []  # oldest first
        for i, body in enumerate(bodies):
            payload = encode_message(a.group.encode(), ts + i, body)
            remote = c.add(payload)
            assert remote == blake3(payload), "the CAS does not address by BLAKE3-256"
            pairs.append((remote, h1(a.group.encode(), ts + i, body), payload))
        page = None
        for start in range(0, len(pairs), a.page_size):
            chunk = pairs[start:start + a.page_size][::-1]  # newest first
            chunk = [(r, l, d if j < a.embed else b"") for j, (r, l, d) in enumerate(chunk)]
            page = encode_remote_log(chunk, tail)
            tail = c.add(page)
        if page is not None:
            c.update(a.name, page)
    except TwirpError as e:
        raise SystemExit("spec_writer: %s" % e)
    print("published %d messages to %s" % (len(pairs), a.name), file=sys.stderr)


if __name__ == "__main__":
    main()
