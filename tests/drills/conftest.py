"""Fixtures of the fault drills: ``drill(name, settings, ...)`` builds a ``harness.Drill``
that is torn down (processes killed, Redis/Mosquitto stopped, database dropped) after the test."""
from __future__ import annotations

import pytest

from tests.drills.harness import Drill, Measurement, Settings

#: Every drill's line, printed again at the end of the session.
LINES: list[str] = []


@pytest.fixture
def drill(tmp_path):
    made: list[Drill] = []

    def build(name: str, settings: Settings | None = None, **options) -> Drill:
        made.append(Drill(name, str(tmp_path / name), settings or Settings(), **options))
        return made[-1]

    yield build
    for each in made:
        each.close()


def report(measurement: Measurement) -> None:
    """Print the drill's line (seen with ``-s`` or on failure) and keep it for the summary."""
    line = measurement.line()
    print(line)
    LINES.append(line)


def recovered(run: Drill, settings: Settings, *, recovery: float, in_flight_bound: int = 0,
              **notes) -> None:
    """The SMS drills' ending: every resident settled within ``recovery`` seconds of the
    fault's end (now), measured, reported and checked."""
    fault_end = run.since_published()
    deadline = fault_end + recovery
    seconds = run.settle(settings.residents, deadline)
    result = run.measure_sms(seconds, deadline, in_flight_bound=in_flight_bound,
                             fault_end=f"{fault_end:.1f}", **notes)
    report(result)
    result.check()


def pytest_terminal_summary(terminalreporter):
    if LINES:
        terminalreporter.write_sep("-", "fault drills (issue #14)")
        for line in LINES:
            terminalreporter.write_line(line)
