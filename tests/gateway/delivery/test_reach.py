"""gateway/delivery/reach.py: who must confirm a notice before it counts as done for them."""
from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from gateway.delivery import reach

YEAR = datetime.now(timezone.utc).year


@pytest.mark.parametrize("visually_impaired, born, vulnerable", [
    (True, None, True), (False, None, False), (False, YEAR - 65, True),
    (False, YEAR - 64, False), (True, YEAR - 30, True),
])
def test_is_vulnerable(visually_impaired, born, vulnerable):
    resident = SimpleNamespace(visually_impaired=visually_impaired, birth_year=born)
    assert reach.is_vulnerable(resident, YEAR) is vulnerable


@pytest.mark.parametrize("severity, required", [
    ("extreme", True), ("severe", True), ("moderate", False), ("minor", False),
    ("unknown", False),
])
def test_confirmation_is_required_of_the_vulnerable_for_severe_and_extreme(severity, required):
    elderly = SimpleNamespace(visually_impaired=False, birth_year=YEAR - 80)
    young = SimpleNamespace(visually_impaired=False, birth_year=YEAR - 30)
    assert reach.confirmation_required(severity, elderly, YEAR) is required
    assert reach.confirmation_required(severity, young, YEAR) is False
