#!/usr/bin/env python3
"""An independent KBS protocol 0.4.0 server for the guest agent's interop test.

Written from Trustee's protocol description (kbs_attestation_protocol.md, kbs-types) and guest.md §4, not from
Custos' code: it checks the byte shapes of the agent's requests strictly (member names and sets, standard base64 for
the evidence, unpadded base64url JWK coordinates, the REPORTDATA binding HASH(JCS({additional-evidence, nonce,
tee-pubkey})) zero-padded to 64 bytes, read straight from the quote at its v4/v5 offset) and releases the secret as
a flattened JWE made by jwcrypto (ECDH-ES+A256KW or RSA-OAEP-256, A256GCM).

Usage: kbs_peer.py --secret FILE --resource REPO/TYPE/TAG --log FILE [--select-hash sha256|sha384|sha512]
       [--upper-case-hash] [--fail-resource N] [--expect-init-data FILE]
Prints the port it listens on (one line). Every check goes to --log as one JSON line {"check", "ok", "detail"}.
"""
import argparse
import base64
import binascii
import hashlib
import http.server
import json
import os
import re
import secrets
import sys
import threading

from jwcrypto import jwe, jwk

ERROR_PREFIX = "https://github.com/confidential-containers/kbs/errors/"
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
COORDINATE_BYTES = {"P-256": 32, "P-384": 48, "P-521": 66}


class Refusal(Exception):
    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def b64url_decode(text, what):
    if not isinstance(text, str) or not B64URL.match(text) or len(text) % 4 == 1:
        raise Refusal("SerdeError", f"{what} is not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def std_b64_decode(text, what):
    if not isinstance(text, str) or len(text) % 4 != 0:
        raise Refusal("SerdeError", f"{what} is not padded standard base64")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise Refusal("SerdeError", f"{what}: {error}")


def jcs(value):
    # RFC 8785 for the shapes used here (strings and objects): sorted keys, no whitespace, UTF-8.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class State:
    def __init__(self, args):
        self.args = args
        self.secret = open(args.secret, "rb").read()
        self.expected_init_data = open(args.expect_init_data, encoding="utf-8").read() if args.expect_init_data else None
        self.sessions = {}
        self.failures_left = args.fail_resource
        self.lock = threading.Lock()
        self.log = open(args.log, "a", encoding="utf-8")

    def record(self, check, ok, detail=""):
        with self.lock:
            self.log.write(json.dumps({"check": check, "ok": ok, "detail": detail}) + "\n")
            self.log.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None

    def log_message(self, *args):
        pass

    def send_json(self, status, value, headers=()):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, text in headers:
            self.send_header(name, text)
        self.end_headers()
        self.wfile.write(body)

    def refuse(self, stage, refusal):
        self.state.record(stage, False, f"{refusal.kind}: {refusal.detail}")
        status = 404 if refusal.kind in ("InvalidRequestPath", "PluginNotFound") else 401
        self.send_json(status, {"type": ERROR_PREFIX + refusal.kind, "detail": refusal.detail})

    def body_json(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise Refusal("SerdeError", "Content-Type is not application/json")
        try:
            return json.loads(raw)
        except ValueError as error:
            raise Refusal("SerdeError", f"not JSON: {error}")

    def session(self):
        for part in self.headers.get("Cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "kbs-session-id" and value in self.state.sessions:
                return self.state.sessions[value]
        raise Refusal("TokenNotFound", "no known kbs-session-id cookie")

    def do_POST(self):
        try:
            if self.path == "/kbs/v0/auth":
                self.auth()
            elif self.path == "/kbs/v0/attest":
                self.attest()
            else:
                raise Refusal("InvalidRequestPath", self.path)
        except Refusal as refusal:
            self.refuse(self.path.rsplit("/", 1)[-1], refusal)

    def do_GET(self):
        try:
            self.resource()
        except Refusal as refusal:
            self.refuse("resource", refusal)

    def auth(self):
        request = self.body_json()
        if not isinstance(request, dict) or set(request) != {"version", "tee", "extra-params"}:
            raise Refusal("SerdeError", f"Request members are {sorted(request) if isinstance(request, dict) else request}")
        if request["version"] != "0.4.0" or request["tee"] != "tdx":
            raise Refusal("AttestationError", f"version {request['version']} tee {request['tee']}")
        extra = request["extra-params"]
        if not isinstance(extra, dict):
            raise Refusal("SerdeError", "extra-params is not an object")
        algorithms = extra.get("supported-hash-algorithms", [])
        if not isinstance(algorithms, list) or not all(isinstance(a, str) for a in algorithms):
            raise Refusal("SerdeError", "supported-hash-algorithms is not a list of strings")
        selected = self.state.args.select_hash
        if selected and selected not in algorithms:
            raise Refusal("AttestationError", f"the agent does not support {selected}: {algorithms}")
        session_id = secrets.token_hex(16)
        nonce = base64.b64encode(secrets.token_bytes(32)).decode()
        self.state.sessions[session_id] = {"nonce": nonce, "hash": selected or "sha384", "jwk": None}
        self.state.record("auth", True, json.dumps(algorithms))
        # --upper-case-hash: the name as some servers spell it (guest.md §4.2: the value is case-insensitive).
        spelled = selected.upper() if selected and self.state.args.upper_case_hash else selected
        challenge = {"nonce": nonce, "extra-params": {"selected-hash-algorithm": spelled} if selected else ""}
        self.send_json(200, challenge, [("Set-Cookie", f"kbs-session-id={session_id}; Path=/kbs/v0; HttpOnly")])

    def check_jwk(self, key):
        if not isinstance(key, dict):
            raise Refusal("SerdeError", "tee-pubkey is not an object")
        if key.get("kty") == "EC":
            if set(key) != {"kty", "crv", "alg", "x", "y"} or key["alg"] != "ECDH-ES+A256KW" or key["crv"] not in COORDINATE_BYTES:
                raise Refusal("SerdeError", f"EC tee-pubkey members/values: {sorted(key)} {key.get('alg')} {key.get('crv')}")
            for name in ("x", "y"):
                if len(b64url_decode(key[name], f"tee-pubkey.{name}")) != COORDINATE_BYTES[key["crv"]]:
                    raise Refusal("SerdeError", f"tee-pubkey.{name} is not {COORDINATE_BYTES[key['crv']]} bytes")
        elif key.get("kty") == "RSA":
            if set(key) != {"kty", "alg", "n", "e"} or key["alg"] != "RSA-OAEP-256":
                raise Refusal("SerdeError", f"RSA tee-pubkey members/values: {sorted(key)} {key.get('alg')}")
            if len(b64url_decode(key["n"], "tee-pubkey.n")) < 256:
                raise Refusal("SerdeError", "RSA modulus below 2048 bits")
            b64url_decode(key["e"], "tee-pubkey.e")
        else:
            raise Refusal("SerdeError", f"tee-pubkey kty {key.get('kty')}")

    def attest(self):
        session = self.session()
        body = self.body_json()
        if not isinstance(body, dict) or not {"runtime-data", "tee-evidence"} <= set(body) <= {"init-data", "runtime-data", "tee-evidence"}:
            raise Refusal("SerdeError", f"Attestation members are {sorted(body) if isinstance(body, dict) else body}")
        init_data = body.get("init-data")
        if self.state.expected_init_data is not None:
            if init_data != {"format": "toml", "body": self.state.expected_init_data}:
                raise Refusal("AttestationError", "init-data is not the expected TOML, verbatim")
        elif init_data is not None:
            raise Refusal("SerdeError", "init-data sent though none was configured")
        runtime = body["runtime-data"]
        if not isinstance(runtime, dict) or set(runtime) != {"nonce", "tee-pubkey"}:
            raise Refusal("SerdeError", "runtime-data members are not {nonce, tee-pubkey}")
        if runtime["nonce"] != session["nonce"]:
            raise Refusal("AttestationError", "runtime-data.nonce is not the challenge nonce")
        self.check_jwk(runtime["tee-pubkey"])
        evidence = body["tee-evidence"]
        if not isinstance(evidence, dict) or set(evidence) != {"primary_evidence", "additional_evidence"}:
            raise Refusal("SerdeError", "tee-evidence members are not {primary_evidence, additional_evidence}")
        if evidence["additional_evidence"] != "":
            raise Refusal("SerdeError", "additional_evidence is not the empty string")
        primary = evidence["primary_evidence"]
        if not isinstance(primary, dict) or set(primary) != {"quote", "cc_eventlog"}:
            raise Refusal("SerdeError", "primary_evidence members are not {quote, cc_eventlog}")
        quote = std_b64_decode(primary["quote"], "quote")
        if primary["cc_eventlog"] is not None:
            log = std_b64_decode(primary["cc_eventlog"], "cc_eventlog")
            # TCG_PCR_EVENT (legacy format): MR index u32, EV_NO_ACTION (3) u32, SHA-1 digest, size, "Spec ID Event03".
            if log[4:8] != b"\x03\x00\x00\x00" or log[32:48] != b"Spec ID Event03\x00":
                raise Refusal("AttestationError", "cc_eventlog does not start with the Spec ID EV_NO_ACTION event")
        version = int.from_bytes(quote[0:2], "little")
        offset = {4: 48 + 520, 5: 48 + 6 + 520}.get(version)
        if offset is None or len(quote) < offset + 64:
            raise Refusal("AttestationError", f"quote version {version} / length {len(quote)}")
        document = {"additional-evidence": "", "nonce": runtime["nonce"], "tee-pubkey": runtime["tee-pubkey"]}
        digest = hashlib.new(session["hash"], jcs(document)).digest()
        expected = (digest + bytes(64))[:64]
        if quote[offset:offset + 64] != expected:
            raise Refusal("AttestationError", f"REPORTDATA is not {session['hash']}(JCS(runtime data)) zero-padded")
        session["jwk"] = runtime["tee-pubkey"]
        self.state.record("attest", True, f"hash={session['hash']} kty={runtime['tee-pubkey']['kty']} "
                          f"cc_eventlog={'null' if primary['cc_eventlog'] is None else 'base64'}")
        self.send_json(200, {"token": "peer.token.unsigned"})

    def resource(self):
        prefix = "/kbs/v0/resource/"
        if not self.path.startswith(prefix):
            raise Refusal("InvalidRequestPath", self.path)
        session = self.session()
        with self.state.lock:
            failing = self.state.failures_left > 0
            if failing:
                self.state.failures_left -= 1
        if failing:
            # --fail-resource N: the first N resource GETs meet a transient failure (the service's 503).
            self.state.record("resource", False, "503 injected")
            self.send_json(503, {"type": "urn:custos:problem:cannot-decide", "detail": "injected"}, [("Retry-After", "1")])
            return
        if session["jwk"] is None:
            raise Refusal("TokenNotFound", "the session has not attested")
        if self.path[len(prefix):] != self.state.args.resource:
            raise Refusal("PolicyDeny", f"{self.path[len(prefix):]} is not released by this KBS")
        public = dict(session["jwk"])
        algorithm = public["alg"]
        key = jwk.JWK(**public)
        token = jwe.JWE(self.state.secret, recipient=key, protected=json.dumps({"alg": algorithm, "enc": "A256GCM"}))
        self.state.record("resource", True, algorithm)
        body = token.serialize(compact=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--secret", required=True)
    parser.add_argument("--resource", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--select-hash", choices=["sha256", "sha384", "sha512"])
    parser.add_argument("--expect-init-data")
    parser.add_argument("--fail-resource", type=int, default=0)
    parser.add_argument("--upper-case-hash", action="store_true")
    args = parser.parse_args()
    Handler.state = State(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
