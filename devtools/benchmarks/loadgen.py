"""A small closed-loop HTTP load generator for the benchmarks: N client threads, each with its own keep-alive
connection and bearer token, for a fixed time; prints latency percentiles and throughput as JSON.

Run as its own process (`python -m devtools.benchmarks.loadgen ...`) so its CPU is not the server's."""
from __future__ import annotations

import argparse
import http.client
import json
import threading
import time


def run(host: str, port: int, path: str, tokens: list[str], concurrency: int, seconds: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"} if tokens else {}
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[i] += 1
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=30)
                continue
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = sorted(x for lst in latencies for x in lst)

    def pct(p: float) -> float:
        return flat[min(len(flat) - 1, int(p / 100 * len(flat)))] * 1000 if flat else 0.0

    return {"requests": len(flat), "errors": sum(errors), "rps": len(flat) / wall, "p50_ms": pct(50),
            "p95_ms": pct(95), "p99_ms": pct(99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--tokens", default="", help="a file of bearer tokens, one a line")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10)
    args = ap.parse_args()
    tokens = open(args.tokens).read().split() if args.tokens else []
    print(json.dumps(run(args.host, args.port, args.path, tokens, args.concurrency, args.seconds)))


if __name__ == "__main__":
    main()
