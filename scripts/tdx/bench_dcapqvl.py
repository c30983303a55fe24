"""Times dcap-qvl 0.7.0 verify() on one quote and collateral, for comparison with `custos bench tdx-verify`.

dcap-qvl caches nothing between calls, so every call is a cold verification (collateral JSON pre-parsed, as the
Custos benchmark pre-loads it). Usage: bench_dcapqvl.py QUOTE COLLATERAL_JSON UNIX_TIME [ITERATIONS]
Prints JSON: {"opsPerSecond", "p50Micros", "p99Micros", "iterations"}.
"""

import json
import sys
import time

import dcap_qvl


def main() -> None:
    quote = open(sys.argv[1], "rb").read()
    with open(sys.argv[2], encoding="utf-8") as f:
        collateral = dcap_qvl.QuoteCollateralV3.from_json(f.read())
    now = int(sys.argv[3])
    iterations = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
    for _ in range(20):
        dcap_qvl.verify(quote, collateral, now)
    samples = []
    start = time.perf_counter()
    for _ in range(iterations):
        t0 = time.perf_counter()
        dcap_qvl.verify(quote, collateral, now)
        samples.append((time.perf_counter() - t0) * 1e6)
    total = time.perf_counter() - start
    samples.sort()
    print(json.dumps({
        "iterations": iterations,
        "opsPerSecond": iterations / total,
        "p50Micros": samples[len(samples) // 2],
        "p99Micros": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
    }))


if __name__ == "__main__":
    main()
