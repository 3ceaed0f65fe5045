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

Against the gateway before the fault-tolerance work (commit 285734b; the
drills' sizes as now, RECOVERY 30 s after the fault; ``>N`` is the deadline):

| drill                           | lost | dup. | stranded | seconds | cause |
|---------------------------------|------|------|----------|---------|-------|
| no fault                        |    0 |    0 |        0 |     7.7 | |
| worker SIGKILLed 3 times (3000) |  138 |    0 |      150 |    >45 | killed batch left `sending`, its job `started` |
| Redis killed, restarted empty   |  747 |    0 |      800 |    >37 | workers exited; no job left for queued rows |
| PostgreSQL refused 15 s         |  700 |    0 |      800 |    >48 | jobs failed in rq, never tried again |
| provider 500 for 18 s (600)     |  491 |    0 |      491 |    >49 | a retry job's retry took its own id, deleted by rq |
| provider 30 % 500s for 15 s     |  115 |    0 |      126 |    >45 | the same, and deadlocks on delivery_counts |
| provider slow (5 s) for 20 s    |    0 |    0 |        0 |    26.8 | (nothing reclaims live rows: no reconciler ran) |
| Mosquitto killed 5 s, 10 speakers |  0 |    0 |        2 |    >36 | `played` acks dropped by the fresh broker |
"""
