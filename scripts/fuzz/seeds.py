#!/usr/bin/env python3
"""Builds the libFuzzer seed corpora from $CUSTOS_TESTDATA (vendor files are never committed; issue 9).

usage: seeds.py TESTDATA OUTDIR — writes OUTDIR/<harness>/<name> for every harness of Fuzz/Sources/CustosFuzz.
Large inputs are trimmed to what the parser reads (an OVMF image's footer, an event log's used part) so that
libFuzzer's default max_len stays small. A synthetic UKI (PE32+ with .osrel/.cmdline/.linux and an Authenticode
certificate table signed by a throwaway key) stands in for the signed-UKI fixtures, which need root to build.
"""
import base64
import glob
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

testdata, out = sys.argv[1], sys.argv[2]


def put(harness, name, data):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def files(pattern):
    return sorted(glob.glob(os.path.join(testdata, pattern)))


def read(path):
    with open(path, "rb") as f:
        return f.read()


PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)

# TDX quotes, and the PCK certificates they carry (for the SGX-extension harness).
for path in files("tdx/quotes/*.bin"):
    data = read(path)
    put("tdx-quote", os.path.basename(path), data)
    for i, m in enumerate(PEM.finditer(data)):
        put("tdx-pck-extension", f"{os.path.basename(path)}.{i}.der", base64.b64decode(b"".join(m.group(1).split())))

# Collateral: QuoteCollateralV3 JSON, TCB Info / QE Identity bodies, CRLs, PEM chains.
for path in files("tdx/collateral/*/collateral.json"):
    name = os.path.basename(os.path.dirname(path))
    data = read(path)
    put("tdx-collateral-v3", name, data)
    doc = json.loads(data)
    if "tcb_info" in doc:
        put("tdx-tcbinfo", name + ".v3", doc["tcb_info"].encode())
    if "qe_identity" in doc:
        put("tdx-qeidentity", name + ".v3", doc["qe_identity"].encode())
for path in files("tdx/collateral/*/tcb_info.json"):
    doc = json.loads(read(path))
    if "tcbInfo" in doc:
        put("tdx-tcbinfo", os.path.basename(os.path.dirname(path)), json.dumps(doc["tcbInfo"], separators=(",", ":")).encode())
for path in files("tdx/collateral/*/qe_identity.json"):
    doc = json.loads(read(path))
    if "enclaveIdentity" in doc:
        put("tdx-qeidentity", os.path.basename(os.path.dirname(path)), json.dumps(doc["enclaveIdentity"], separators=(",", ":")).encode())
for path in files("tdx/collateral/*/*.der"):
    put("x509-crl", os.path.basename(os.path.dirname(path)) + "." + os.path.basename(path), read(path))
for path in files("tdx/collateral/*/*.pem") + files("tdx/root/*.pem"):
    put("x509-pem-chain", os.path.basename(os.path.dirname(path)) + "." + os.path.basename(path), read(path))

# CCEL table and event logs (the used part: filler after the last event is cut, 8 zero bytes end the log).
for path in files("tdx/eventlog/*table*"):
    put("tdx-ccel-table", os.path.basename(path), read(path))
for path in files("tdx/eventlog/*data*"):
    put("tdx-eventlog", os.path.basename(path), read(path).rstrip(b"\x00").rstrip(b"\xff") + bytes(8))

# SEV: AMD ARK/ASK, platform certificates, OVMF footers (the last 4 KiB holds the table).
for path in files("sev/amd-roots/*/*.cert"):
    put("sev-amd-cert", path.split(os.sep)[-2] + "." + os.path.basename(path), read(path))
for path in files("sev/platform-chains/*/*.cert") + files("sev/crosscheck/*.cert"):
    put("sev-cert", path.split(os.sep)[-2] + "." + os.path.basename(path), read(path))
for path in files("sev/ovmf-tails/*.bin") + files("sev/sevctl-kat/OVMF*") + files("sev/crosscheck/*.fd"):
    put("sev-ovmf-footer", os.path.basename(path), read(path)[-4096:])


# UKI / Authenticode: a synthetic signed PE32+.
def der(tag, body):
    n = len(body)
    if n < 0x80:
        length = bytes([n])
    else:
        enc = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(enc)]) + enc
    return bytes([tag]) + length + body


def oid(dotted):
    arcs = [int(a) for a in dotted.split(".")]
    body = bytes([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.insert(0, 0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(chunk)
    return der(0x06, body)


def pe(sections, cert=b""):
    """A PE32+ image: DOS stub, COFF header, optional header with 16 data directories, section table, data."""
    file_align, header_size = 0x200, 0x400
    raw, table, offset, rva = b"", b"", header_size, 0x1000
    for name, data in sections:
        size = (len(data) + file_align - 1) // file_align * file_align
        table += struct.pack("<8sIIIIIIHHI", name, len(data), rva, size, offset, 0, 0, 0, 0, 0x40000040)
        raw += data.ljust(size, b"\0")
        offset += size
        rva += (len(data) + 0xFFF) // 0x1000 * 0x1000
    dirs = [(0, 0)] * 16
    if cert:
        win = struct.pack("<IHH", 8 + len(cert), 0x0200, 0x0002) + cert
        win = win.ljust((len(win) + 7) // 8 * 8, b"\0")
        dirs[4] = (offset, len(win))
    opt = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, 0, 0, 0, 0x1000, 0x1000, 0x10000000, 0x1000, file_align,
                      0, 0, 0, 0, 0, 0, 0, rva, header_size, 0, 10, 0, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    opt += b"".join(struct.pack("<II", *d) for d in dirs)
    coff = struct.pack("<HHIIIHH", 0x8664, len(sections), 0, 0, 0, len(opt), 0x22)
    dos = b"MZ" + bytes(0x3A) + struct.pack("<I", 0x40)
    headers = (dos + b"PE\0\0" + coff + opt + table).ljust(header_size, b"\0")
    image = headers + raw
    return image + (win if cert else b"")


sections = [(b".osrel", b"ID=fuzz\nVERSION_ID=1\n"), (b".cmdline", b"console=ttyS0\0"), (b".linux", b"\x4d\x5a" + bytes(510))]
unsigned = pe(sections)
put("uki-pe", "unsigned.efi", unsigned)
digest = hashlib.sha256(unsigned).digest()  # any digest: the harnesses parse, they do not check it
spc = der(0x30, der(0x30, oid("1.3.6.1.4.1.311.2.1.15") + der(0x30, b""))
          + der(0x30, der(0x30, oid("2.16.840.1.101.3.4.2.1") + der(0x05, b"")) + der(0x04, digest)))
with tempfile.TemporaryDirectory() as tmp:
    key, crt, content, sig = (os.path.join(tmp, n) for n in ("k.pem", "c.pem", "spc.der", "sig.der"))
    with open(content, "wb") as f:
        f.write(spc)
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                        "-out", crt, "-subj", "/CN=custos fuzz seed", "-days", "1"], check=True, capture_output=True)
        subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-econtent_type", "1.3.6.1.4.1.311.2.1.4",
                        "-in", content, "-signer", crt, "-inkey", key, "-out", sig, "-md", "sha256"], check=True, capture_output=True)
        signature = read(sig)
        put("uki-authenticode", "synthetic.p7", signature)
        put("uki-pe", "signed.efi", pe(sections, signature))
    except (OSError, subprocess.CalledProcessError) as error:
        print(f"seeds: no Authenticode seed ({error})", file=sys.stderr)
for path in glob.glob(os.path.join(os.path.dirname(__file__), "../../.build-fixtures/uki/*/*.efi")):
    data = read(path)
    if len(data) <= 1 << 20:
        put("uki-pe", os.path.basename(os.path.dirname(path)) + "." + os.path.basename(path), data)


# Policies: the shipped YAML files, alone (the harness's single-file path, `custos policy hash`) and as a set: a file
# followed by NUL (a set of one) and (reference values NUL policy), as the policy-yaml harness splits.
repo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
policy_files = sorted(glob.glob(os.path.join(repo, "Policies", "**", "*.yaml"), recursive=True))
reference_files = [p for p in policy_files if b"kind: ReferenceValues" in read(p)]
for path in policy_files:
    name = os.path.relpath(path, os.path.join(repo, "Policies")).replace(os.sep, ".")
    put("policy-yaml", name, read(path))
    put("policy-yaml", name + "+", read(path) + b"\0")
    for ref in reference_files:
        if ref != path:
            put("policy-yaml", os.path.basename(ref) + "+" + name, read(ref) + b"\0" + read(path))

# JSON: the JSON documents of the testdata (collateral, expected results) and, because the json-value harness runs
# with -max_len=4096 (run.sh: whole 16-60 KB documents made it ~600 exec/s), their subtrees of at most 4 KB, in the
# documents' own bytes re-serialized compactly and indented.
def subtrees(value, found):
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(",", ":"))
        if len(text) <= 4096:
            found.append(value)
            return
        for child in (value.values() if isinstance(value, dict) else value):
            subtrees(child, found)


for path in files("tdx/collateral/*/*.json") + files("tdx/expected.json"):
    data = read(path)
    name = os.path.basename(os.path.dirname(path)) + "." + os.path.basename(path)
    if len(data) <= 4096:
        put("json-value", name, data)
    try:
        found = []
        subtrees(json.loads(data), found)
    except ValueError:
        continue
    for i, value in enumerate(found[:40]):
        put("json-value", f"{name}.{i}", json.dumps(value, separators=(",", ":")).encode())
        if i % 4 == 0:
            put("json-value", f"{name}.{i}.indented", json.dumps(value, indent=1).encode()[:4096])

# KBS wire types: /auth requests, a challenge, /attest bodies with the testdata quotes and event logs.
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


try:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    jwks = []
    for curve, name, size in ((ec.SECP256R1(), "P-256", 32), (ec.SECP384R1(), "P-384", 48), (ec.SECP521R1(), "P-521", 66)):
        numbers = ec.generate_private_key(curve).public_key().public_numbers()
        jwks.append({"kty": "EC", "crv": name, "x": b64url(numbers.x.to_bytes(size, "big")), "y": b64url(numbers.y.to_bytes(size, "big"))})
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    jwks.append({"kty": "RSA", "alg": "RSA-OAEP-256", "n": b64url(numbers.n.to_bytes(256, "big")), "e": b64url(numbers.e.to_bytes(3, "big"))})
except ImportError:  # python3-cryptography is in the Makefile's test packages; without it the harness's own JWKs remain
    jwks = []
for i, jwk in enumerate(jwks):
    put("jose-jwk", f"python.{i}.json", json.dumps(jwk).encode())
if jwks:
    put("jose-jwk", "python.set.json", json.dumps({"keys": jwks}).encode())
put("kbs-json", "request.json", json.dumps({"version": "0.4.0", "tee": "tdx", "extra-params": ""}).encode())
put("kbs-json", "challenge.json", json.dumps({"nonce": b64url(bytes(32)), "extra-params": {"selected_hash": "sha384"}}).encode())
logs = [read(p).rstrip(b"\x00").rstrip(b"\xff") + bytes(8) for p in files("tdx/eventlog/*data*")]
for i, path in enumerate(files("tdx/quotes/*.bin")[:3]):
    evidence = {"quote": base64.b64encode(read(path)).decode(), "cc_eventlog": base64.b64encode(logs[i % len(logs)]).decode() if logs else None}
    body = {
        "runtime-data": {"nonce": b64url(bytes([i]) * 32), "tee-pubkey": jwks[i % len(jwks)] if jwks else {}},
        "tee-evidence": {"primary_evidence": evidence, "additional_evidence": ""},
    }
    if i == 0:
        body["init-data"] = {"format": "toml", "body": 'version = "0.1.0"\nalgorithm = "sha384"\n[data]\ntenant = "default"\n'}
    put("kbs-json", os.path.basename(path) + ".attest.json", json.dumps(body).encode())

# Init-data TOML (confidential-containers' format, the subset InitData reads), the edges of the subset included.
init_data = {
    "coco.toml": 'version = "0.1.0"\nalgorithm = "sha384"\n\n[data]\ntenant = "default"\n"policy.rego" = \'\'\'\npackage agent_policy\ndefault AllowRequestsFailingPolicy := true\n\'\'\'\n',
    "subset.toml": "# c\nversion = '0.1.0'\nalgorithm = \"sha256\"\ncount = 1_000\ndebug = false\n[data]\ntenant = 'acme'\npolicy = \'\'\'\nline\n\'\'\'\nescaped = \"a\\tb\\\"c\"\nml = \"\"\"\nx \\\n y\"\"\"\n",
    "integers.toml": "a = 9007199254740991\nb = -9007199254740991\nc = 0\r\n",
    "sha512.toml": 'algorithm = "sha512"\n[t]\nk = true\n',
}
for name, text in init_data.items():
    put("kbs-init-data", name, text.encode())

for harness in sorted(os.listdir(out)):
    print(f"seeds: {harness}: {len(os.listdir(os.path.join(out, harness)))} files")
