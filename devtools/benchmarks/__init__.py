"""The benchmark suites of `python cli.py bench`."""
