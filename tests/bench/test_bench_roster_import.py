"""The roster import benchmark at a tiny size (``bench/roster_import.py``), as its documented command."""
from __future__ import annotations

import pytest

from tests.bench.test_bench_smoke import positive, run

pytestmark = pytest.mark.integration


def test_roster_import():
    output, result = run("roster_import", "--residents", "300")
    assert result["residents"] == result["imported"] == 300
    assert result["final_progress"] == [300, 300]  # the record's done and total when it ended
    assert set(result["progress_stages"]) <= {"writing"}  # a file's rows can be counted
    assert "upload → done" in output
    positive(result, "seconds", "rows_per_second", "worker_ru_maxrss_bytes", "worker_sampled_peak_rss_bytes",
             "worker_idle_rss_bytes", "parse_seconds", "validate_seconds", "floor_seconds", "ratio_to_floor")
