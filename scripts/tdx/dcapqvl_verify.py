"""Runs the dcap-qvl 0.7.0 peer verifier over a batch of cases for the TDX differential test.

Input (argv[1], JSON): {"cases": [{"id": str, "quote": hex, "collateral": path to a QuoteCollateralV3 JSON file,
"now": unix seconds, "root_ca_der": optional path to a root CA DER (uses verify_with_root_ca)}]}.
Output (stdout, JSON): {"version": dcap_qvl.__version__, "results": [{"id", "result": "accepted"|"rejected",
"status", "advisory_ids", "error"}]}, in input order. Collateral files are parsed once each.
"""

import json
import sys

import dcap_qvl


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        request = json.load(f)
    collaterals = {}
    roots = {}
    results = []
    for case in request["cases"]:
        path = case["collateral"]
        if path not in collaterals:
            with open(path, encoding="utf-8") as f:
                collaterals[path] = dcap_qvl.QuoteCollateralV3.from_json(f.read())
        quote = bytes.fromhex(case["quote"])
        out = {"id": case["id"]}
        try:
            root = case.get("root_ca_der")
            if root:
                if root not in roots:
                    with open(root, "rb") as f:
                        roots[root] = f.read()
                report = dcap_qvl.verify_with_root_ca(quote, collaterals[path], roots[root], case["now"])
            else:
                report = dcap_qvl.verify(quote, collaterals[path], case["now"])
            out.update(result="accepted", status=report.status, advisory_ids=list(report.advisory_ids))
        except Exception as error:  # noqa: BLE001 - every peer failure is a rejection; the message is reported
            out.update(result="rejected", error=str(error))
        results.append(out)
    json.dump({"version": dcap_qvl.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
