"""What is not the product but lives beside it: the benchmark suites (`python cli.py bench`), the fault drills
(`python cli.py faults`) and the local Web Push service that tests and benchmarks send to. Not installed with the
service; run from a checkout."""
