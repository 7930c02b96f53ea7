"""`python -m devtools.benchmarks.profiled_worker OUT.prof`: a `musubi worker` under cProfile, counting CPU time of
the worker's thread and of its push loop's thread (where encryption and HTTP happen), for the push suite."""
from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import time

from federation.push import sender


def main() -> None:
    out = sys.argv[1]
    profiles: list[cProfile.Profile] = []
    original = sender.Sender._run

    def profiled_loop(loop):  # type: ignore[no-untyped-def]
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.runcall(original, loop)

    sender.Sender._run = staticmethod(profiled_loop)  # type: ignore[method-assign]
    main_profile = cProfile.Profile(time.thread_time)
    profiles.append(main_profile)
    sys.argv = ["cli.py", "worker"]
    try:
        main_profile.runcall(runpy.run_path, "cli.py", run_name="__main__")
    except SystemExit:
        pass
    finally:
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
