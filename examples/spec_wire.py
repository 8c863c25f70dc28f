"""The 3/REMOTE-LOG wire form, from the .proto files in proto/ alone (not the crate).

Python 3 standard library only: the few protobuf messages are encoded by hand (varints
and length-delimited fields), BLAKE3-256 is implemented below from its specification
(the stdlib has none), and the Twirp services are plain HTTP POSTs with
Content-Type: application/protobuf.

    proto/vac/cas.proto        Content{bytes data=1}  Address{bytes id=1}
    proto/vac/ns.proto         NameUpdate{string name=1; bytes content=2}  Query{string name=1}
                               Content{bytes data=1}  Response{bytes data=1}
    proto/vac/mvds.proto       Message{bytes group_id=1; int64 timestamp=2; bytes body=3}
    proto/vac/remotelog.proto  RemoteLog{repeated Pair pair=1; bytes tail=2}
                               Pair{bytes remoteHash=1; bytes localHash=2; bytes data=3}
"""

import hashlib
import json
import os
import struct
import urllib.error
import urllib.request

# --- BLAKE3-256 (written from the BLAKE3 paper; slow, but enough for a reader) ---------

IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
      0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, PARENT, ROOT = 1, 2, 4, 8
MASK = 0xFFFFFFFF


def _g(v, a, b, c, d, x, y):
    v[a] = (v[a] + v[b] + x) & MASK
    v[d] = ((v[d] ^ v[a]) >> 16) | (((v[d] ^ v[a]) << 16) & MASK)
    v[c] = (v[c] + v[d]) & MASK
    v[b] = ((v[b] ^ v[c]) >> 12) | (((v[b] ^ v[c]) << 20) & MASK)
    v[a] = (v[a] + v[b] + y) & MASK
    v[d] = ((v[d] ^ v[a]) >> 8) | (((v[d] ^ v[a]) << 24) & MASK)
    v[c] = (v[c] + v[d]) & MASK
    v[b] = ((v[b] ^ v[c]) >> 7) | (((v[b] ^ v[c]) << 25) & MASK)


def _compress(cv, block, counter, block_len, flags):
    """The compression function; returns the 8-word chaining value."""
    m = list(struct.unpack("<16I", block.ljust(64, b"\0")))
    v = list(cv) + IV[:4] + [counter & MASK, counter >> 32, block_len, flags]
    for rnd in range(7):
        _g(v, 0, 4, 8, 12, m[0], m[1])
        _g(v, 1, 5, 9, 13, m[2], m[3])
        _g(v, 2, 6, 10, 14, m[4], m[5])
        _g(v, 3, 7, 11, 15, m[6], m[7])
        _g(v, 0, 5, 10, 15, m[8], m[9])
        _g(v, 1, 6, 11, 12, m[10], m[11])
        _g(v, 2, 7, 8, 13, m[12], m[13])
        _g(v, 3, 4, 9, 14, m[14], m[15])
        if rnd < 6:
            m = [m[p] for p in PERMUTATION]
    return [v[i] ^ v[i + 8] for i in range(8)]


def _chunk(data, counter, root):
    blocks = [data[i:i + 64] for i in range(0, len(data), 64)] or [b""]
    cv = IV
    for j, block in enumerate(blocks):
        last = j == len(blocks) - 1
        flags = (CHUNK_START if j == 0 else 0) | (CHUNK_END if last else 0)
        cv = _compress(cv, block, counter, len(block), flags | (ROOT if last and root else 0))
    return cv


def _tree(chunks, counter, root):
    if len(chunks) == 1:
        return _chunk(chunks[0], counter, root)
    left = 1  # the left subtree holds the largest power of two of chunks, but not all
    while left * 2 < len(chunks):
        left *= 2
    block = struct.pack("<8I", *_tree(chunks[:left], counter, False)) + struct.pack(
        "<8I", *_tree(chunks[left:], counter + left, False))
    return _compress(IV, block, 0, 64, PARENT | (ROOT if root else 0))


def blake3(data):
    """BLAKE3-256 of data (32 bytes)."""
    chunks = [data[i:i + 1024] for i in range(0, len(data), 1024)] or [b""]
    return struct.pack("<8I", *_tree(chunks, 0, True))


assert blake3(b"").hex().startswith("af1349b9f5f9a1a6a0404dea36dcc949")

# --- protobuf, by hand ---------------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1  # int64: two's complement, ten bytes when negative
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, value):
    """A proto3 field: bytes/str length-delimited, int as varint; defaults are omitted."""
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, int):
        return varint(num << 3) + varint(value) if value else b""
    return varint(num << 3 | 2) + varint(len(value)) + value if value else b""


def fields(buf):
    """Decodes a message into {field number: [values]}; raises ValueError on bad input."""
    out, i = {}, 0

    def read_varint():
        nonlocal i
        n = shift = 0
        while True:
            if i >= len(buf) or shift > 63:
                raise ValueError("truncated or overlong varint")
            n |= (buf[i] & 0x7F) << shift
            i, shift = i + 1, shift + 7
            if not buf[i - 1] & 0x80:
                return n

    while i < len(buf):
        key = read_varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            n = read_varint()
            if i + n > len(buf):
                raise ValueError("length-delimited field runs past the end")
            value, i = bytes(buf[i:i + n]), i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError("unsupported wire type %d" % wire)
        if num == 0:
            raise ValueError("field number 0")
        out.setdefault(num, []).append(value)
    return out


def one(f, num, default=b""):
    return f.get(num, [default])[-1]


def encode_message(group_id, timestamp, body):
    return field(1, group_id) + field(2, timestamp) + field(3, body)


def decode_message(buf):
    f = fields(buf)
    ts = one(f, 2, 0)
    return one(f, 1), ts - (1 << 64) if ts >= 1 << 63 else ts, one(f, 3)


def h1(group_id, timestamp, body):
    """The MVDS message id: SHA-256("MESSAGE_ID" || group_id || le64(timestamp) || body)."""
    return hashlib.sha256(b"MESSAGE_ID" + group_id + struct.pack("<q", timestamp) + body).digest()


def encode_remote_log(pairs, tail):
    """pairs: [(remoteHash, localHash, data)], newest first."""
    body = b"".join(field(1, field(1, r) + field(2, l) + field(3, d)) for r, l, d in pairs)
    return body + field(2, tail)


def decode_remote_log(buf):
    f = fields(buf)
    pairs = []
    for p in f.get(1, []):
        pf = fields(p)
        pairs.append((one(pf, 1), one(pf, 2), one(pf, 3)))
    return pairs, one(f, 2)


# --- Twirp over HTTP -----------------------------------------------------------------


class TwirpError(Exception):
    def __init__(self, code, msg):
        super().__init__("%s: %s" % (code, msg))
        self.code = code


class Client:
    """vac.cas.CAS and vac.ns.NS at base_url (token from REMOTELOG_TOKEN, if set).

    actor (default: REMOTELOG_ACTOR, if set) names this client to `remotelog serve --mock`,
    which gives each actor its own view of the mocked remote (X-Remotelog-Actor); other
    servers ignore it. A mocked remote answers slowly: wait up to `timeout` seconds.
    """

    def __init__(self, base_url, actor=None, timeout=120):
        self.base = base_url.rstrip("/")
        self.token = os.environ.get("REMOTELOG_TOKEN")
        self.actor = actor or os.environ.get("REMOTELOG_ACTOR")
        self.timeout = timeout

    def call(self, method, body):
        req = urllib.request.Request(self.base + "/twirp/" + method, data=body, method="POST")
        req.add_header("Content-Type", "application/protobuf")
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        if self.actor:
            req.add_header("X-Remotelog-Actor", self.actor)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())
            except ValueError:
                err = {"code": "http %d" % e.code, "msg": ""}
            raise TwirpError(err.get("code"), err.get("msg")) from None

    def add(self, data):
        return one(fields(self.call("vac.cas.CAS/Add", field(1, data))), 1)

    def get(self, address):
        return one(fields(self.call("vac.cas.CAS/Get", field(1, address))), 1)

    def update(self, name, content):
        return one(fields(self.call("vac.ns.NS/Update", field(1, name) + field(2, content))), 1)

    def fetch(self, name):
        return one(fields(self.call("vac.ns.NS/Fetch", field(1, name))), 1)
