#!/usr/bin/env python3
"""Counts the HTTP requests a client sends to an S3 store.

    count_proxy.py UPSTREAM_PORT PORT_FILE COUNT_FILE

Listens on a free loopback port (written to PORT_FILE), passes every request on to
127.0.0.1:UPSTREAM_PORT unchanged (so its SigV4 signature, which covers the Host header
the client sent, still holds) and writes "METHOD count" lines to COUNT_FILE after each
request. One request per connection: `Connection: close` is added upstream and the
answer closes the client's connection too, so requests are counted, not connections.
"""
import collections, os, socket, sys, threading

upstream, port_file, count_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
counts = collections.Counter()
lock = threading.Lock()


def read_request(f):
    head = b""
    while True:
        line = f.readline()
        if not line:
            return None, None
        head += line
        if line == b"\r\n":
            break
    length = 0
    for l in head.split(b"\r\n"):
        k, _, v = l.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    return head, f.read(length)


def serve(conn):
    with conn:
        f = conn.makefile("rb")
        head, body = read_request(f)
        if head is None:
            return
        method = head.split(b" ", 1)[0].decode()
        # Counted before it is passed on, and the file replaced whole: once the client has
        # its answer, the count includes the request.
        with lock:
            counts[method] += 1
            with open(count_file + ".tmp", "w") as out:
                for m, n in sorted(counts.items()):
                    out.write(f"{m} {n}\n")
            os.replace(count_file + ".tmp", count_file)
        up = socket.create_connection(("127.0.0.1", upstream))
        with up:
            up.sendall(head[:-2] + b"connection: close\r\n\r\n" + body)
            while True:
                chunk = up.recv(1 << 16)
                if not chunk:
                    break
                conn.sendall(chunk)


s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(256)
with open(port_file, "w") as out:
    out.write(str(s.getsockname()[1]))
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
