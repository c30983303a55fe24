#!/usr/bin/env python3
"""Independent JOSE peer for Custos's interop tests: jwcrypto and PyJWT (PyPI), never Custos code.

Usage: peer.py REQUESTS.json  ->  prints {"versions": {...}, "results": [...]} on stdout.
Each request is an object with "op":
  jwe_decrypt  {jwk (private JWK) | pem (PKCS#8 private key), jwe (flattened JSON text)} -> {plaintext_b64u}
  jwe_encrypt  {jwk (public JWK), alg, enc, plaintext_b64u, apu?, apv?}                   -> {jwe (flattened JSON text)}
  jws_verify   {token, jwk (public JWK), alg}         (PyJWT and jwcrypto both)          -> {payload_b64u}
  jws_sign     {jwk (private JWK), alg, payload_b64u}  (jwcrypto, compact)                -> {token}
  jwt_verify   {token, jwks, issuer, audience}         (PyJWT: exp/nbf/iss/aud checked)  -> {claims}
  thumbprint   {jwk}                                   (jwcrypto, RFC 7638 SHA-256)      -> {thumbprint}
Failures are reported per request as {"error": "..."}; the script itself exits 0 unless its input is unreadable.
"""
import json
import sys

import jwt
from jwcrypto import jwe, jwk, jws
from jwcrypto import version as jwcrypto_version
from jwcrypto.common import base64url_decode, base64url_encode, json_encode


def op_jwe_decrypt(req):
    key = jwk.JWK(**req["jwk"]) if "jwk" in req else jwk.JWK.from_pem(req["pem"].encode())
    token = jwe.JWE()
    token.deserialize(req["jwe"], key=key)
    return {"plaintext_b64u": base64url_encode(token.payload)}


def op_jwe_encrypt(req):
    key = jwk.JWK(**req["jwk"])
    header = {"alg": req["alg"], "enc": req["enc"]}
    for name in ("apu", "apv"):
        if name in req:
            header[name] = req[name]
    token = jwe.JWE(base64url_decode(req["plaintext_b64u"]), protected=json_encode(header))
    token.add_recipient(key)
    return {"jwe": token.serialize(compact=False)}


def op_jws_verify(req):
    key = jwk.JWK(**req["jwk"])
    token = jws.JWS()
    token.deserialize(req["token"])
    token.verify(key, alg=req["alg"])
    pyjwt_key = jwt.PyJWK(req["jwk"]).key
    payload = jwt.api_jws.decode_complete(req["token"], pyjwt_key, algorithms=[req["alg"]])["payload"]
    if payload != token.payload:
        raise ValueError("PyJWT and jwcrypto disagree on the payload")
    return {"payload_b64u": base64url_encode(token.payload)}


def op_jws_sign(req):
    key = jwk.JWK(**req["jwk"])
    token = jws.JWS(base64url_decode(req["payload_b64u"]))
    token.add_signature(key, alg=req["alg"], protected=json_encode({"alg": req["alg"]}))
    return {"token": token.serialize(compact=True)}


def op_jwt_verify(req):
    header = jwt.get_unverified_header(req["token"])
    keys = jwt.PyJWKSet.from_dict(req["jwks"])
    matches = [k for k in keys.keys if k.key_id == header.get("kid")]
    if len(matches) != 1:
        raise ValueError("no unique key with kid %r" % header.get("kid"))
    claims = jwt.decode(
        req["token"], matches[0].key, algorithms=["ES256", "ES384"], audience=req["audience"], issuer=req["issuer"],
        options={"require": ["exp", "iat", "iss", "aud"]})
    return {"claims": claims}


def op_thumbprint(req):
    return {"thumbprint": jwk.JWK(**req["jwk"]).thumbprint()}


OPS = {name[3:]: fn for name, fn in globals().items() if name.startswith("op_")}


def main():
    with open(sys.argv[1]) as handle:
        requests = json.load(handle)
    results = []
    for req in requests:
        try:
            results.append(OPS[req["op"]](req))
        except Exception as error:  # reported per request: the test decides what a refusal means
            results.append({"error": "%s: %s" % (type(error).__name__, error)})
    versions = {"jwcrypto": jwcrypto_version.__version__, "pyjwt": jwt.__version__}
    json.dump({"versions": versions, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
