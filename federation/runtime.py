"""What runs beside the web service in the embedded setup (no REDIS_URL): the job runner and the scheduler."""
from __future__ import annotations

from flask import Flask


def start_embedded(app: Flask) -> None:
    from federation import jobs

    jobs.start(app)
