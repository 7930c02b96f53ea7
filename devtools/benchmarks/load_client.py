"""The members of the load suite, in their own process: every member holds a connection of their own to the server
(2,000 members, 2,000 connections open at once), opens the inbox, marks unread notices read, presses 出席 on some,
then puts the phone down, as members do: they look again now and then (`--think`), and when a notice's push
arrives they open it some seconds later (exponentially distributed, mean `--react`), so every publish sends a
wave of 2,000 members to the server.

Written on asyncio and aiohttp so one process can keep thousands of connections open; the connections actually
open are counted from the kernel's socket table, not assumed."""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from pathlib import Path
from typing import Any

import aiohttp


def established(port: int) -> int:
    """Client sockets of this machine connected to `port` (ESTABLISHED in /proc/net/tcp and tcp6)."""
    want = f":{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[2].endswith(want) and fields[3] == "01":
                count += 1
    return count


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.finished: list[float] = []  # when each answer came (monotonic), for the per-second throughput
        self.kinds: list[str] = []  # what each answered request was (inbox, read, stamp, publish)
        self.published_at: list[float] = []  # when each publish was answered (monotonic): a wave follows
        self.lags: list[float] = []  # how late this process's own loop woke up: its share of every latency
        self.requests = 0
        self.errors: dict[str, int] = {}
        self.reads_ok = 0
        self.stamps_ok = 0
        self.published = 0
        self.publish_answers: list[list[int]] = []
        self.peak_connections = 0
        self.members_started = 0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def kind_of(method: str, url: str) -> str:
    if url.endswith("/read"):
        return "read"
    if url.endswith("/reaction"):
        return "stamp"
    if "/me/inbox" in url:
        return "inbox"
    return "publish" if method == "POST" else method.lower()


async def call(session: aiohttp.ClientSession, stats: Stats, method: str, url: str, token: str,
               body: dict | None = None) -> tuple[int, Any]:
    t0 = time.perf_counter()
    try:
        async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            payload = await resp.json() if resp.content_type == "application/json" else None
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        stats.requests += 1
        stats.error(type(exc).__name__)
        return 0, None
    stats.latencies.append(time.perf_counter() - t0)
    stats.finished.append(time.monotonic())
    stats.kinds.append(kind_of(method, url))
    stats.requests += 1
    if status >= 400:
        stats.error(str(status))
    return status, payload


async def member(base: str, token: str, seed: int, stats: Stats, start_at: float, stop_at: float,
                 think: tuple[float, float], pushes: asyncio.Queue, react_mean: float) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    # One connection per member, kept open between visits (limit=1 and a keep-alive longer than the think time).
    connector = aiohttp.TCPConnector(limit=1, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stats.members_started += 1
        while time.monotonic() < stop_at:
            status, page = await call(session, stats, "GET", f"{base}/api/v1/me/inbox?limit=20", token)
            for item in page.get("items", []) if status == 200 and page else []:
                nid = item["notice"]["id"]
                if item["read_at"] is None:
                    status, _ = await call(session, stats, "POST", f"{base}/api/v1/me/inbox/{nid}/read", token)
                    if status in (200, 204):
                        stats.reads_ok += 1
                if item["reaction"] is None and rng.random() < 0.3:
                    status, _ = await call(session, stats, "PUT", f"{base}/api/v1/me/inbox/{nid}/reaction", token,
                                           {"stamp": rng.choice(["attend", "absent", "read"])})
                    if status == 200:
                        stats.stamps_ok += 1
            # Put the phone down until the next look, or until a push arrives and is opened a little later.
            wait = min(rng.uniform(*think), max(0.0, stop_at - time.monotonic()))
            try:
                await asyncio.wait_for(pushes.get(), timeout=wait)
                await asyncio.sleep(min(rng.expovariate(1.0 / react_mean), max(0.0, stop_at - time.monotonic())))
            except TimeoutError:
                pass


async def publisher(base: str, staff: str, notices: int, stats: Stats, start_at: float, stop_at: float,
                    pushes: list[asyncio.Queue]) -> None:
    gap = (stop_at - start_at) / (notices + 1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for k in range(notices):
            await asyncio.sleep(max(0.0, start_at + gap * (k + 1) - time.monotonic()))
            status, notice = await call(session, stats, "POST", f"{base}/api/v1/tenants/bench-fed/notices", staff,
                                        {"title": f"学習会のご案内 {k + 1}", "body": "本文", "category": "seminar",
                                         "audience": {"all": True}})
            answers = [status]
            if status == 201:
                status, _ = await call(session, stats, "POST",
                                       f"{base}/api/v1/tenants/bench-fed/notices/{notice['id']}/publish", staff)
                answers.append(status)
            stats.publish_answers.append(answers)
            if answers[-1] == 202:
                stats.published += 1
                stats.published_at.append(time.monotonic())
                # The push reaches every phone (delivery itself is measured by the cascade and push suites).
                for queue in pushes:
                    queue.put_nowait(k)


async def watch_connections(port: int, stats: Stats, stop_at: float) -> None:
    while time.monotonic() < stop_at:
        stats.peak_connections = max(stats.peak_connections, established(port))
        await asyncio.sleep(0.5)


async def watch_lag(stats: Stats, stop_at: float) -> None:
    """Every 50 ms, how much later than asked this process's loop came back: when it is busy, every latency it
    measures includes that wait, which the server did not cause."""
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        await asyncio.sleep(0.05)
        stats.lags.append(time.perf_counter() - t0 - 0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[int(p * (len(ordered) - 1))] * 1000 if ordered else 0.0


WAVE_SECONDS = 60.0  # after a publish, the members' answers to its push: most open it within a minute


async def run(args: argparse.Namespace) -> dict[str, Any]:
    tokens = Path(args.tokens).read_text().split()
    base = f"http://127.0.0.1:{args.port}"
    stats = Stats()
    now = time.monotonic()
    # Members arrive over the ramp (a push lands on phones over a few seconds, not in one instant), then stay.
    starts = [now + args.ramp * i / len(tokens) for i in range(len(tokens))]
    stop_at = now + args.ramp + args.seconds
    think = (args.think * 0.5, args.think * 1.5)
    pushes: list[asyncio.Queue] = [asyncio.Queue() for _ in tokens]
    t0 = time.perf_counter()
    await asyncio.gather(
        *(member(base, tok, i, stats, starts[i], stop_at, think, pushes[i], args.react)
          for i, tok in enumerate(tokens)),
        publisher(base, args.staff, args.notices, stats, now + args.ramp, stop_at, pushes),
        watch_connections(args.port, stats, stop_at),
        watch_lag(stats, stop_at),
    )
    wall = time.perf_counter() - t0
    lat = sorted(stats.latencies)

    def pct(p: float) -> float:
        return lat[int(p * (len(lat) - 1))] * 1000 if lat else 0.0

    per_second: dict[int, int] = {}
    for at in stats.finished:
        per_second[int(at - now)] = per_second.get(int(at - now), 0) + 1
    active = max(1.0, min(wall, stop_at - now))
    by_kind: dict[str, list[float]] = {}
    wave: list[float] = []
    quiet: list[float] = []
    for latency, at, kind in zip(stats.latencies, stats.finished, stats.kinds, strict=True):
        by_kind.setdefault(kind, []).append(latency)
        in_wave = any(0 <= at - p < WAVE_SECONDS for p in stats.published_at)
        (wave if in_wave else quiet).append(latency)
    breakdown = {k: {"count": len(v), "p50_ms": percentile(v, 0.5), "p99_ms": percentile(v, 0.99)}
                 for k, v in sorted(by_kind.items())}
    slow: dict[int, int] = {}
    for latency, at in zip(stats.latencies, stats.finished, strict=True):
        if latency > 0.25:
            slow[int((at - now) // 10) * 10] = slow.get(int((at - now) // 10) * 10, 0) + 1
    breakdown["in a wave"] = {"count": len(wave), "p50_ms": percentile(wave, 0.5), "p99_ms": percentile(wave, 0.99)}
    breakdown["between waves"] = {"count": len(quiet), "p50_ms": percentile(quiet, 0.5),
                                  "p99_ms": percentile(quiet, 0.99)}
    return {"members": len(tokens), "members_started": stats.members_started,
            "peak_connections": stats.peak_connections, "requests": stats.requests,
            "rps": stats.requests / active, "peak_rps": max(per_second.values(), default=0),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "errors": sum(stats.errors.values()), "errors_by_kind": stats.errors, "reads_ok": stats.reads_ok,
            "stamps_ok": stats.stamps_ok, "published": stats.published, "publish_answers": stats.publish_answers,
            "wall_s": wall, "breakdown": breakdown, "slow_by_10s": dict(sorted(slow.items())),
            "publishes_at_s": [round(p - now, 1) for p in stats.published_at],
            "client_lag_ms": {"p50": percentile(stats.lags, 0.5), "p99": percentile(stats.lags, 0.99),
                              "max": max(stats.lags, default=0.0) * 1000}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--staff", required=True)
    ap.add_argument("--notices", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30, help="time every member stays connected after the ramp")
    ap.add_argument("--ramp", type=float, default=10, help="seconds over which the members arrive")
    ap.add_argument("--think", type=float, default=60, help="mean seconds between a member's own looks")
    ap.add_argument("--react", type=float, default=20, help="mean seconds from a push to the member opening it")
    args = ap.parse_args()
    # One descriptor per member's connection, and some to spare.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, len(Path(args.tokens).read_text().split()) + 512))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
