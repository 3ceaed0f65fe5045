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


def resident(*, hearing=False, visual=False):
    return SimpleNamespace(hearing_impaired=hearing, visually_impaired=visual)


@pytest.mark.parametrize("who, channels, loudspeaker, expected", [
    (resident(visual=True), ("voice", "sms"), False, {"phone"}),  # one handset
    (resident(visual=True), ("voice", "sms"), True, {"phone", "loudspeaker"}),
    (resident(hearing=True), ("sms",), True, {"phone"}),  # cannot hear the loudspeaker
    (resident(hearing=True), ("sms", "voice"), False, {"phone"}),  # nor a call
    (resident(hearing=True), ("sms", "wechat"), True, {"phone", "wechat"}),
    (resident(), ("wechat",), True, {"wechat", "loudspeaker"}),
    (resident(), ("sms", "voice", "wechat"), True, {"phone", "wechat", "loudspeaker"}),
    (resident(), (), False, set()),
])
def test_independent_paths_count_what_a_resident_perceives_once_per_device(
        who, channels, loudspeaker, expected):
    assert reach.paths(who, channels, loudspeaker) == expected


@pytest.mark.parametrize("who, channels, loudspeaker, expected", [
    (resident(hearing=True), ("sms", "voice"), True, {"phone", "visit"}),  # the deaf see a visitor
    (resident(visual=True, hearing=True), (), False, {"visit"}),
    (resident(), ("sms", "voice", "wechat"), True, {"phone", "wechat", "loudspeaker", "visit"}),
])
def test_a_planned_visit_is_a_path_of_its_own(who, channels, loudspeaker, expected):
    assert reach.paths(who, channels, loudspeaker, visit=True) == expected


@pytest.mark.parametrize("grid, planned", [("450702100201001", True), ("450702100201002", False),
                                           (None, False)])
def test_a_visit_is_planned_where_the_residents_grid_has_a_worker(grid, planned):
    assert reach.visit_planned(grid, frozenset({"450702100201001"})) is planned
