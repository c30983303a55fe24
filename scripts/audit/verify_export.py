#!/usr/bin/env python3
"""Offline auditor for `custos audit export` (no Custos needed): Python stdlib + PyPI `cryptography` only.

    verify_export.py export FILE [--vkey VKEY]   check an export: note signature (Ed25519, C2SP signed-note),
                                                 checkpoint, every leaf hash, the prev_leaf chain, every inclusion
                                                 proof (RFC 9162 §2.1.3.2) and the root recomputed from all leaves
    verify_export.py note VKEY NOTEFILE          open a signed note with a vkey; prints the checkpoint text

Exit 0 when everything verifies, 1 with the reason otherwise. Written from specs/audit.md and the RFCs, independently of
the Swift code, so the Custos tests use it as a peer.
"""
import base64
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def fail(reason):
    print("FAIL: " + reason)
    sys.exit(1)


def b64(text):
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("non-canonical base64")
    return raw


def parse_vkey(vkey):
    name, keyid, key = vkey.split("+", 2)
    raw = b64(key)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 vkey")
    computed = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if computed.hex() != keyid:
        raise ValueError("key ID mismatch")
    return name, computed, Ed25519PublicKey.from_public_bytes(raw[1:])


def open_note(note, vkey):
    name, keyid, public = parse_vkey(vkey)
    split = note.rfind("\n\n")
    if split < 0:
        raise ValueError("no blank line")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs.endswith("\n"):
        raise ValueError("signature block does not end in LF")
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("bad signature line")
        signame, sig = line[2:].rsplit(" ", 1)
        raw = b64(sig)
        if signame != name or raw[:4] != keyid:
            continue
        public.verify(raw[4:], text.encode())  # raises InvalidSignature
        verified = True
    if not verified:
        raise ValueError("no signature by the given key")
    return text


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def root_of(leaves):
    stack = []  # (height, hash)
    for leaf in leaves:
        stack.append((0, leaf))
        while len(stack) >= 2 and stack[-1][0] == stack[-2][0]:
            (h, right), (_, left) = stack.pop(), stack.pop()
            stack.append((h + 1, node_hash(left, right)))
    if not stack:
        return hashlib.sha256(b"").digest()
    root = stack[-1][1]
    for _, h in reversed(stack[:-1]):
        root = node_hash(h, root)
    return root


def check_export(path, vkey=None):
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or lines[0].get("type") != "checkpoint":
        fail("the first line is not the checkpoint")
    head = lines[0]
    vkey = vkey or head["vkey"]
    try:
        text = open_note(head["note"], vkey)
    except (ValueError, InvalidSignature) as error:
        fail("checkpoint note: %r" % (error,))
    origin, size, root64 = text.rstrip("\n").split("\n")[:3]
    root = b64(root64)
    if origin != head["origin"] or int(size) != head["size"] or root.hex() != head["rootHash"]:
        fail("the checkpoint line does not match its note")
    entries = lines[1:]
    if len(entries) != int(size):
        fail("expected %s entries, found %d" % (size, len(entries)))
    leaves, previous = [], "0" * 64
    for seq, line in enumerate(entries):
        body = line["body"].encode("utf-8")
        leaf = leaf_hash(body)
        entry = json.loads(body)
        if line["seq"] != seq or entry["seq"] != seq:
            fail("seq %d out of order" % seq)
        if leaf.hex() != line["leafHash"]:
            fail("seq %d: leaf hash mismatch" % seq)
        if entry["prev_leaf"] != previous:
            fail("seq %d: prev_leaf breaks the chain" % seq)
        if json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != body:
            fail("seq %d: body is not canonical" % seq)
        proof = [bytes.fromhex(h) for h in line["proof"]]
        if not verify_inclusion(seq, int(size), leaf, proof, root):
            fail("seq %d: inclusion proof does not verify" % seq)
        leaves.append(leaf)
        previous = leaf.hex()
    if root_of(leaves) != root:
        fail("the root recomputed from all leaves differs from the checkpoint")
    print("OK %s entries, root %s" % (size, root.hex()))


def main(argv):
    if len(argv) >= 2 and argv[0] == "export":
        vkey = argv[argv.index("--vkey") + 1] if "--vkey" in argv else None
        check_export(argv[1], vkey)
    elif len(argv) == 3 and argv[0] == "note":
        with open(argv[2], encoding="utf-8") as f:
            note = f.read()
        try:
            print(open_note(note, argv[1]), end="")
        except (ValueError, InvalidSignature) as error:
            fail("note: %r" % (error,))
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
