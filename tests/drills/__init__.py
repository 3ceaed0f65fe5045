"""Fault drills: the gateway run as an operator runs it, through the faults of issue #14.

Each test is one row of the issue's drill table, sized for CI on two shared
cores: PostgreSQL (a throwaway database), a Redis and a Mosquitto of the
drill's own, the Twilio stand-in in its own process, two ``flask --app wsgi
worker`` subprocesses kept running by a supervisor (restarted a second after
they exit, as systemd would), and nothing else: no ``reconcile`` by hand, no
Redis keys deleted. See ``tests/drills/harness.py``.

Each asserts, by a stated deadline: nobody lost (every resident's number got
the message, or the ledger holds it sent), nothing stranded (no row still
planned, queued or sending), no row the ledger calls sent that the stand-in
never got, and no more duplicate messages than the rows in flight at the
fault (zero where nothing in flight can be in doubt). Each prints one line,
``DRILL <name>: lost=… duplicates=… in_flight_bound=… stranded=… seconds=…``,
and the session ends with all of them (``pytest_terminal_summary``).
"""
