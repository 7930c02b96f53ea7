"""The scheduler, in one place: `runner` runs the periodic jobs (declared as data with stable ids) in APScheduler,
inside `serve` or as the one `python cli.py scheduler` process; `notices` is the work of a tick (publishing due
notices, reminders, re-queuing a lost cascade), claimed from the database so two schedulers never double-run it."""
