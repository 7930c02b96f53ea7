"""push: Web Push to the local push service (in its own process, so its CPU is not counted), in pushes per second
of sender CPU, against the floor of pywebpush's encryption alone for the same messages."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools.bench import SuiteResult


def _start_service(count: int) -> tuple[subprocess.Popen, list[dict]]:
    proc = subprocess.Popen([sys.executable, "-m", "devtools.local_push", "--no-decrypt", "--quiet",
                             "--subscriptions", str(count)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # the origin
    subs = [json.loads(proc.stdout.readline()) for _ in range(count)]
    return proc, subs


def run(scale: float = 1.0) -> SuiteResult:
    from pywebpush import WebPusher

    from federation.push import vapid
    from federation.push.addresses import parse_networks
    from federation.push.sender import Sender

    result = SuiteResult("push")
    count = max(200, int(6000 * scale))
    proc, subs = _start_service(count)
    try:
        for i, sub in enumerate(subs):
            sub["id"] = i
        with tempfile.TemporaryDirectory(prefix="musubi-bench-") as tmp:
            path = Path(tmp) / "vapid.json"
            vapid.generate(path)
            keys = vapid.VapidKeys.load(path, "mailto:bench@musubi.invalid")
            body = json.dumps({"v": 1, "kind": "notice", "notice_id": 1, "tenant": "ベンチ連合会",
                               "title": "春闘学習会のご案内", "excerpt": "学習会を開催します。" * 4,
                               "url": "/notices/1"}, ensure_ascii=False).encode()
            headers = {"TTL": "86400", "Urgency": "normal", "Topic": "n1"}
            local = parse_networks("127.0.0.1")  # the local push service: allowed explicitly, as nothing else is
            # Floor: encryption alone (a fresh ephemeral key per message, as RFC 8291 requires).
            c0 = time.process_time()
            for sub in subs:
                WebPusher(sub).encode(body, "aes128gcm")
            enc_cpu = time.process_time() - c0
            enc_rate = count / enc_cpu
            for threads in (8, 32):
                sender = Sender(threads, 10)
                sender.send_all(keys, subs[:100], body, headers, local)  # warm the connection pool
                c0, w0 = time.process_time(), time.perf_counter()
                outcomes = sender.send_all(keys, subs, body, headers, local)
                cpu, wall = time.process_time() - c0, time.perf_counter() - w0
                ok = sum(1 for o in outcomes if o.status == 201)
                rate = ok / cpu
                result.add(f"pushes per sender CPU-second ({threads} in flight)", rate, "/s", ">= 2500/s per core",
                           enc_rate, rate >= 2500)
                result.notes.append(f"{threads} in flight: {ok}/{count} accepted in {wall:.2f} s wall "
                                    f"({ok / wall:.0f}/s), {cpu:.2f} s CPU")
            result.notes.append(f"floor: encryption alone {enc_rate:.0f} messages per CPU-second")
    finally:
        proc.terminate()
        proc.wait(10)
    return result
