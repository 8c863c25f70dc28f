#!/usr/bin/env python3
"""Writes N message files (200-2,000 bytes of made-up text) into DIR, the same every time.

usage: corpus.py DIR N

The shape follows benches/common (one file per message, message i in folder i mod 100, a
16-hex-digit prefix, then words of an 8,000-word vocabulary picked with a Zipf-like bias)
so that the figures are comparable with bench/README.md; the bytes are not identical.
"""
import itertools
import os
import random
import sys


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    rng = random.Random(42)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(8000)]
    # Zipf-like: the word of rank r is picked with weight 1/(r+1).
    cum = list(itertools.accumulate(1.0 / (r + 1) for r in range(len(vocab))))
    for d in range(100):
        os.makedirs(os.path.join(out, f"{d:02}"), exist_ok=True)
    for i in range(n):
        size = rng.randint(200, 2000)
        parts = [f"{rng.getrandbits(64):016x} "]
        length = len(parts[0])
        while length < size:
            words = rng.choices(vocab, cum_weights=cum, k=12)
            sentence = " ".join(words).capitalize() + ". "
            parts.append(sentence)
            length += len(sentence)
        body = "".join(parts).encode()[:size]
        with open(os.path.join(out, f"{i % 100:02}", f"{i:07}"), "wb") as f:
            f.write(body)


if __name__ == "__main__":
    main()
