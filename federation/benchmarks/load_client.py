"""The members of the load suite, in their own process: each thread takes members in turn, opens the inbox, marks
unread notices read and presses 出席 on some, while one thread publishes the federation's notices."""
from __future__ import annotations

import argparse
import http.client
import json
import random
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--staff", required=True)
    ap.add_argument("--notices", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--threads", type=int, default=16)
    args = ap.parse_args()
    tokens = open(args.tokens).read().split()
    lock = threading.Lock()
    stats: dict = {"requests": 0, "errors": 0, "stamps_ok": 0, "published": 0, "publish_answers": []}
    latencies: list[float] = []
    stop = time.time() + args.seconds

    def call(conn: http.client.HTTPConnection, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:  # noqa: E501
        headers = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        t0 = time.perf_counter()
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        with lock:
            latencies.append(time.perf_counter() - t0)
            stats["requests"] += 1
            if resp.status >= 400:
                stats["errors"] += 1
        return resp.status, (json.loads(raw) if raw and resp.headers.get("Content-Type", "").startswith(
            "application/json") else {})

    def member(i: int) -> None:
        rng = random.Random(i)
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
        mine = tokens[i::args.threads]
        n = 0
        while time.time() < stop:
            token = mine[n % len(mine)]
            n += 1
            status, page = call(conn, "GET", "/api/v1/me/inbox?limit=20", token)
            for item in page.get("items", []) if status == 200 else []:
                nid = item["notice"]["id"]
                if item["read_at"] is None:
                    call(conn, "POST", f"/api/v1/me/inbox/{nid}/read", token)
                if item["reaction"] is None and rng.random() < 0.3:
                    status, _ = call(conn, "PUT", f"/api/v1/me/inbox/{nid}/reaction", token,
                                     {"stamp": rng.choice(["attend", "absent", "read"])})
                    if status == 200:
                        with lock:
                            stats["stamps_ok"] += 1

    def publisher() -> None:
        gap = args.seconds / (args.notices + 1)
        for k in range(args.notices):
            time.sleep(gap)
            # A fresh connection each time: the server closes a keep-alive connection left idle for seconds.
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
            status, notice = call(conn, "POST", "/api/v1/tenants/bench-fed/notices", args.staff,
                                  {"title": f"学習会のご案内 {k + 1}", "body": "本文", "category": "seminar",
                                   "audience": {"all": True}})
            answers = [status]
            if status == 201:
                status, _ = call(conn, "POST", f"/api/v1/tenants/bench-fed/notices/{notice['id']}/publish",
                                 args.staff)
                answers.append(status)
            with lock:
                stats["publish_answers"].append(answers)
            if answers[-1] == 202:
                    with lock:
                        stats["published"] += 1

    threads = [threading.Thread(target=member, args=(i,)) for i in range(args.threads)]
    threads.append(threading.Thread(target=publisher))
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000 if latencies else 0.0
    print(json.dumps({**stats, "rps": stats["requests"] / wall, "p95_ms": p95}))


if __name__ == "__main__":
    main()
