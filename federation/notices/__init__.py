"""Notices and the cascade: compose, target, schedule, deliver exactly once, read, react."""
