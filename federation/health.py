"""Liveness and readiness for load balancers and orchestrators (no sign-in, no tenant data)."""
from __future__ import annotations

import time

from flask import Flask, current_app, jsonify
from sqlalchemy import text

from federation.extensions import db
from federation.space.documents.storage import storage


def init_app(app: Flask) -> None:
    with app.app_context():
        # Built once at startup so a store that cannot be configured (MUSUBI_STORAGE=s3 without a bucket, an unknown
        # MUSUBI_STORAGE) stops the process with the setting named, like the settings in config.py, not at the
        # first upload. Nothing is contacted here: /readyz does that.
        storage()

    @app.get("/healthz")
    def healthz():  # type: ignore[no-untyped-def]
        """The process answers: nothing else is checked (the trivial endpoint the inbox benchmark compares to)."""
        return jsonify(ok=True)

    @app.get("/readyz")
    def readyz():  # type: ignore[no-untyped-def]
        checks: dict[str, object] = {}
        ok = True
        try:
            db.session.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            checks["database"] = f"error: {type(exc).__name__}"
            ok = False
        url = current_app.config.get("REDIS_URL")
        if url:
            try:
                from redis import Redis
                from rq import Queue

                from federation.jobs import QUEUE_NAME

                conn = Redis.from_url(url, socket_timeout=2)
                conn.ping()
                checks["redis"] = "ok"
                checks["queue_depth"] = Queue(QUEUE_NAME, connection=conn).count
                beat = conn.get("musubi:scheduler:heartbeat")
                age = time.time() - float(beat) if beat else None
                checks["scheduler_heartbeat_age_s"] = round(age, 1) if age is not None else None
                if age is None or age > 60:
                    checks["scheduler"] = "no heartbeat in the last minute"
                    ok = False
            except Exception as exc:  # noqa: BLE001
                checks["redis"] = f"error: {type(exc).__name__}"
                ok = False
        else:
            checks["jobs"] = "in-process"
        try:
            # The local folder is writable, or the bucket answers a HEAD with these credentials (one quick try).
            storage().check()
            checks["storage"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["storage"] = f"error: {type(exc).__name__}"
            ok = False
        resp = jsonify(ok=ok, checks=checks)
        resp.status_code = 200 if ok else 503
        return resp
