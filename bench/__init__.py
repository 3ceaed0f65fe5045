"""Benchmarks: each script measures one figure and, in the same run, the floor it is compared with.

Run them from the repository root with the project's venv, e.g.
``.venv/bin/python -m bench.plan_and_queue --residents 1000000 --database sqlite``.
Results and the machine they ran on are recorded in ``docs/benchmarks.md``.
"""
