"""Runs `custos bench tdx-verify` (warm and cold) and dcap-qvl 0.7.0 on the same quote, interleaved, ROUNDS times,
and prints the median throughputs and the ratios the TDX issue sets goals for (warm >= 4x, cold >= 1.5x).

Interleaving keeps a noisy shared machine from favouring one side. Usage:
  compare.py CUSTOS PYTHON QUOTE COLLATERAL_DIR AT_ISO8601 UNIX_TIME [ROUNDS]
Prints one JSON object; with a terminal also a short table on stderr.
"""

import json
import statistics
import subprocess
import sys
from pathlib import Path


def run_json(command: list[str]) -> dict:
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main() -> None:
    custos, python, quote, collateral, at, unix_time = sys.argv[1:7]
    rounds = int(sys.argv[7]) if len(sys.argv) > 7 else 5
    peer = str(Path(__file__).with_name("bench_dcapqvl.py"))
    base = [custos, "bench", "tdx-verify", "--quote", quote, "--collateral", collateral, "--at", at, "--json"]
    samples: dict[str, list[dict]] = {"warm": [], "cold": [], "dcapqvl": []}
    for _ in range(rounds):
        samples["warm"].append(run_json(base + ["--iterations", "2000"]))
        samples["cold"].append(run_json(base + ["--iterations", "500", "--cold"]))
        samples["dcapqvl"].append(run_json([python, peer, quote, collateral + "/collateral.json", unix_time, "1000"]))

    def median(kind: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[kind] if key in s)

    peer_ops = median("dcapqvl", "opsPerSecond")
    result = {
        "rounds": rounds,
        "dcapqvl": {"opsPerSecond": peer_ops, "p50Micros": median("dcapqvl", "p50Micros")},
        "warm": {
            "opsPerSecond": median("warm", "opsPerSecond"),
            "p50Micros": median("warm", "p50Micros"),
            "multiCoreOpsPerSecond": median("warm", "multiCoreOpsPerSecond"),
        },
        "cold": {
            "opsPerSecond": median("cold", "opsPerSecond"),
            "p50Micros": median("cold", "p50Micros"),
            "multiCoreOpsPerSecond": median("cold", "multiCoreOpsPerSecond"),
        },
    }
    result["warmRatio"] = result["warm"]["opsPerSecond"] / peer_ops
    result["coldRatio"] = result["cold"]["opsPerSecond"] / peer_ops
    # The cold floor: the ECDSA verifications alone, with nothing else, single-threaded.
    verify = median("cold", "p256VerifyMicros")
    checks = samples["cold"][0]["signatureChecksCold"]
    result["p256VerifyMicros"] = verify
    result["coldSignatureFloorMicros"] = checks * verify
    result["coldFloorRatio"] = result["dcapqvl"]["p50Micros"] / (checks * verify)
    print(json.dumps(result, indent=2))
    if sys.stderr.isatty():
        print(
            f"warm {result['warm']['opsPerSecond']:.0f} ops/s ({result['warmRatio']:.2f}x dcap-qvl, goal 4x), "
            f"cold {result['cold']['opsPerSecond']:.0f} ops/s ({result['coldRatio']:.2f}x, goal 1.5x), "
            f"dcap-qvl {peer_ops:.0f} ops/s; median of {rounds} interleaved rounds. Cold floor: {checks} ECDSA "
            f"verifications x {verify:.1f} us = {checks * verify:.0f} us, at most {result['coldFloorRatio']:.2f}x dcap-qvl's p50",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
