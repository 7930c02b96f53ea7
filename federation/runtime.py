"""What runs beside the web service in the embedded setup (no REDIS_URL): the job runner and the scheduler."""
from __future__ import annotations

from flask import Flask


def start_embedded(app: Flask) -> None:
    from federation import jobs
    from federation.scheduler import runner as scheduling

    jobs.start(app)
    if not app.config.get("REDIS_URL"):
        # With Redis, the one `python cli.py scheduler` process ticks; embedded, this process does.
        scheduling.start_embedded(app)
