"""Load on ``python -m predictor serve``: N concurrent clients on loopback for T seconds.

    python bench/bench_serve.py                       # 8 clients, 10 s, one record per request
    python bench/bench_serve.py --clients 16 --seconds 5 --records 10

Starts the server on a free loopback port (127.0.0.1 only: no other address is ever a
target), lets each client (a thread with its own keep-alive connection, the standard
library's ``http.client``) send ``POST /predict``
with the example patient, one after another, until the time is up or the request cap is
reached, then stops the server. Prints requests per second, p50 and p99 latency and errors
(any status but 200, or a probability that differs from ``predict(dict)``), and whether the
targets hold: 0 errors and p99 under 50 ms for single records at 8 clients.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from predictor import predict

ROOT = Path(__file__).resolve().parents[1]
PATIENT = json.loads((ROOT / "examples" / "patient.json").read_text())
MAX_SECONDS = 120.0
MAX_REQUESTS = 1_000_000
TARGET_P99_MS = 50.0


def _start_server(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "predictor", "serve", "--host", "127.0.0.1", "--port", "0"],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    deadline = time.monotonic() + 60
    while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{found.group(1)}"


def _post(connection: http.client.HTTPConnection, payload: bytes) -> tuple[int, object]:
    """POST /predict on a kept-alive connection: the status and the parsed body."""
    connection.request(
        "POST", "/predict", body=payload, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration (default 10 s)")
    parser.add_argument("--records", type=int, default=1, help="records per request (default 1)")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="stop after this many requests"
    )
    args = parser.parse_args()
    seconds = min(args.seconds, MAX_SECONDS)
    cap = min(args.max_requests, MAX_REQUESTS)
    body = PATIENT if args.records == 1 else [PATIENT] * args.records
    expected = predict(PATIENT).probability

    with tempfile.TemporaryDirectory() as folder:
        process, url = _start_server(Path(folder) / "server.log")
        try:
            payload = json.dumps(body).encode()
            host, port = url.removeprefix("http://").split(":")
            warm = http.client.HTTPConnection(host, int(port), timeout=10)
            for _ in range(50):  # the first requests pay for imports
                _post(warm, payload)
            warm.close()
            latencies: list[list[float]] = [[] for _ in range(args.clients)]
            errors = [0] * args.clients
            sent = [0]
            lock = threading.Lock()
            stop_at = time.perf_counter() + seconds

            def client(k: int) -> None:  # the standard library's client: the lightest
                connection = http.client.HTTPConnection(host, int(port), timeout=10)
                while time.perf_counter() < stop_at:
                    with lock:
                        if sent[0] >= cap:
                            break
                        sent[0] += 1
                    started = time.perf_counter()
                    try:
                        status, result = _post(connection, payload)
                        first = result if isinstance(result, dict) else result[0]
                        ok = status == 200 and first["probability"] == expected
                    except (OSError, http.client.HTTPException, ValueError, KeyError):
                        ok = False
                        connection.close()
                        connection = http.client.HTTPConnection(host, int(port), timeout=10)
                    latencies[k].append(time.perf_counter() - started)
                    errors[k] += not ok
                connection.close()

            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
        finally:
            process.terminate()
            process.wait(timeout=10)

    all_ms = 1000 * np.concatenate([np.asarray(x) for x in latencies])
    n, failed = len(all_ms), sum(errors)
    p50, p99 = np.percentile(all_ms, [50, 99])
    print(
        f"{args.clients} clients, {args.records} record(s) per request, {elapsed:.1f} s on "
        f"127.0.0.1: {n:,} requests, {n / elapsed:,.0f} requests/s, p50 {p50:.1f} ms, "
        f"p99 {p99:.1f} ms, max {all_ms.max():.1f} ms, {failed} errors"
    )
    if args.clients == 8 and args.records == 1:
        met = failed == 0 and p99 < TARGET_P99_MS
        verdict = "met" if met else "MISSED"
        print(f"target (0 errors, p99 < {TARGET_P99_MS:g} ms at 8 clients): {verdict}")


if __name__ == "__main__":
    main()
