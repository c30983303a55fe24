#!/usr/bin/env python3
"""Checks Custos's Merkle output against pymerkle 7.0.0 (PyPI, RFC 9162 tree with 0x00/0x01 prefixes).

Input (JSON file, argv[1]): {"leaves": [hex entry bytes], "roots": {n: hex}, "inclusion": [[index, size, [hex]]],
"consistency": [[first, second, [hex]]]} as the Swift test wrote it. For every size n, pymerkle's root must equal
Custos's; every inclusion path must equal pymerkle's (its `path` is the leaf hash followed by the RFC 9162 path, with
1-based indices); pymerkle's consistency proofs use another format, so each Custos consistency proof is checked
with this file's own RFC 9162 §2.1.4.2 verifier against pymerkle's roots. Prints {"checked": N, "mismatches": [...]}.
"""
import hashlib
import json
import sys
import warnings

warnings.simplefilter("ignore")
from pymerkle import InmemoryTree  # noqa: E402


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_consistency(first, second, first_hash, second_hash, path):
    if not path:
        return False
    if first & (first - 1) == 0:
        path = [first_hash] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    tree = InmemoryTree(algorithm="sha256")
    for leaf in data["leaves"]:
        tree.append_entry(bytes.fromhex(leaf))
    checked, mismatches = 0, []
    roots = {}
    for n in range(1, len(data["leaves"]) + 1):
        roots[n] = tree.get_state(n)
    for n, root in data["roots"].items():
        checked += 1
        if roots[int(n)].hex() != root:
            mismatches.append("root %s" % n)
    for index, size, path in data["inclusion"]:
        checked += 1
        theirs = [h if isinstance(h, str) else h.hex() for h in tree.prove_inclusion(index + 1, size).serialize()["path"]]
        if theirs[1:] != path:
            mismatches.append("inclusion %d/%d" % (index, size))
    for first, second, path in data["consistency"]:
        checked += 1
        if not verify_consistency(first, second, roots[first], roots[second], [bytes.fromhex(h) for h in path]):
            mismatches.append("consistency %d/%d" % (first, second))
    print(json.dumps({"checked": checked, "mismatches": mismatches[:20]}))


if __name__ == "__main__":
    main()
