#!/usr/bin/env python3
"""A TLS-terminating proxy for the tests (tests/tls.rs), as caddy or nginx would stand in
front of `remotelog serve` or an object store: TLS on a free loopback port, plain TCP to
the upstream port, bytes passed through untouched (so Host headers and SigV4 signatures
arrive as the client sent them).

    tls_proxy.py CERT KEY UPSTREAM_PORT

Prints the port it listens on (one line), then serves until killed or until the process
that started it is gone (so a crashed test leaves nothing behind).
"""

import os
import select
import socket
import ssl
import sys
import threading
import time


def pump(tls, upstream):
    """Copies both ways until either side closes or the pair is idle for a minute."""
    socks = [tls, upstream]
    try:
        while True:
            # Bytes already decrypted wait in the TLS object, unseen by select.
            ready = [tls] if tls.pending() else select.select(socks, [], [], 60)[0]
            if not ready:
                return
            for s in ready:
                data = s.recv(1 << 16)
                if not data:
                    return
                (upstream if s is tls else tls).sendall(data)
    except (OSError, ssl.SSLError):
        return
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


def serve(conn, ctx, upstream_port):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        # The client refused the certificate (the tests want that), or spoke no TLS.
        conn.close()
        return
    try:
        upstream = socket.create_connection(("127.0.0.1", upstream_port))
    except OSError:
        tls.close()
        return
    pump(tls, upstream)


def main():
    cert, key, upstream_port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)

    parent = os.getppid()

    def orphaned():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=orphaned, daemon=True).start()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, ctx, upstream_port), daemon=True).start()


if __name__ == "__main__":
    main()
