#!/usr/bin/env python3
"""Writes the fuzzers' seed corpora from the shared protocol vectors.

usage: seed_corpus.py VECTORS_DIR OUT_DIR  (creates OUT_DIR/command and OUT_DIR/reasm)
"""
import base64
import json
import os
import sys


def payloads(vectors):
    for name in sorted(os.listdir(vectors)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(vectors, name), encoding="utf-8") as f:
            doc = json.load(f)
        for case in doc.get("cases", []):
            if "payload" in case:
                yield name, case["payload"].encode("utf-8")
            elif "payload_base64" in case:
                yield name, base64.b64decode(case["payload_base64"])


def fragments(payload, size):
    out = bytearray()
    total = len(payload)
    for off in range(0, max(total, 1), size):
        chunk = payload[off:off + size]
        out += bytes([0]) + total.to_bytes(2, "big") + off.to_bytes(2, "big") + len(chunk).to_bytes(2, "big") + chunk
    return bytes(out)


def main():
    vectors, out = sys.argv[1], sys.argv[2]
    cmd_dir, reasm_dir = os.path.join(out, "command"), os.path.join(out, "reasm")
    os.makedirs(cmd_dir, exist_ok=True)
    os.makedirs(reasm_dir, exist_ok=True)
    n = 0
    for name, p in payloads(vectors):
        if len(p) >= 65535:
            continue
        with open(os.path.join(cmd_dir, "seed-%04d" % n), "wb") as f:
            f.write(p)
        if name == "command.json":
            with open(os.path.join(reasm_dir, "seed-%04d" % n), "wb") as f:
                f.write(fragments(p, 37))
        n += 1


if __name__ == "__main__":
    main()
