import collections
import datetime
import io
import tracemalloc

import phonenumbers
import pytest

from audiences import areas, demo
from audiences.residents import read_roster_csv, write_roster_csv

THIS_YEAR = datetime.date.today().year


@pytest.fixture(scope="module")
def residents():
    return list(demo.demo_residents())


def share(residents, predicate):
    return sum(1 for resident in residents if predicate(resident)) / len(residents)


def test_the_same_seed_gives_the_same_county_and_another_seed_does_not():
    assert list(demo.demo_residents(500, seed=1)) == list(demo.demo_residents(500, seed=1))
    assert list(demo.demo_residents(500, seed=1)) != list(demo.demo_residents(500, seed=2))
    assert demo.demo_areas() == demo.demo_areas()
    assert demo.demo_devices() == demo.demo_devices()


def test_areas_are_valid_unique_and_every_parent_is_listed_before_its_children():
    listed = demo.demo_areas()
    codes = [code for code, _ in listed]
    assert len(codes) == len(set(codes))
    assert ("450700", "钦州市") in listed and ("450702", "钦南区") in listed and ("450722", "浦北县") in listed
    seen = set()
    for code in codes:
        assert areas.normalize(code) == code
        assert areas.parent(code) is None or areas.parent(code) in seen
        seen.add(code)
    towns_per_district = collections.Counter(code[:6] for code in codes if areas.level(code) == "town")
    assert set(towns_per_district) == {"450702", "450703", "450721", "450722"}
    assert all(2 <= count <= 3 for count in towns_per_district.values())
    villages_per_town = collections.Counter(code[:9] for code in codes if areas.level(code) == "village")
    assert all(3 <= count <= 4 for count in villages_per_town.values())


def test_every_village_has_one_loudspeaker_and_a_couple_are_test_devices():
    villages = [code for code, _ in demo.demo_areas() if areas.level(code) == "village"]
    devices = demo.demo_devices()
    assert sorted(area for _, area, _ in devices) == sorted(villages)
    assert all(device_id == f"spk-{area}" for device_id, area, _ in devices)
    assert 1 <= sum(is_test for _, _, is_test in devices) <= 3


def test_every_resident_lives_in_a_demo_village(residents):
    villages = {code for code, _ in demo.demo_areas() if areas.level(code) == "village"}
    assert len(residents) == demo.DEMO_RESIDENTS
    assert {resident.area_code for resident in residents} == villages


def test_every_phone_validates_and_every_resident_can_be_reached(residents):
    for resident in residents:
        assert resident.phone or resident.wechat_openid
        if resident.phone:
            number = phonenumbers.parse(resident.phone)
            assert phonenumbers.is_valid_number(number), resident.phone
            assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
    phones = [resident.phone for resident in residents if resident.phone]
    assert len(phones) == len(set(phones))


def test_every_mobile_prefix_the_generator_uses_validates():
    for prefix in demo._MOBILE_PREFIXES:
        for tail in ("00000000", "12345678", "99999999"):
            assert phonenumbers.is_valid_number(phonenumbers.parse(f"+86{prefix}{tail}")), prefix


def test_the_mix_of_ages_impairments_and_phones_is_believable(residents):
    ages = [resident.age(THIS_YEAR) for resident in residents]
    assert all(18 <= age <= 99 for age in ages)
    assert 0.18 <= sum(age >= 65 for age in ages) / len(ages) <= 0.28
    assert 0.01 <= share(residents, lambda r: r.visually_impaired) <= 0.03
    assert 0.015 <= share(residents, lambda r: r.hearing_impaired) <= 0.045
    assert 0.004 <= share(residents, lambda r: r.test_audience) <= 0.02
    assert 0.01 <= share(residents, lambda r: r.opt_out) <= 0.035
    assert 0 < share(residents, lambda r: r.language == "en") <= 0.01
    assert 0 < share(residents, lambda r: r.phone is None) <= 0.03


def test_smartphones_and_wechat_fall_with_age(residents):
    def smartphone_share(youngest, oldest):
        group = [r for r in residents if youngest <= r.age(THIS_YEAR) <= oldest]
        return share(group, lambda r: r.has_smartphone)

    assert smartphone_share(18, 59) >= 0.85
    assert smartphone_share(75, 99) <= 0.25
    assert all(r.has_smartphone for r in residents if r.wechat_openid)
    assert 0.6 <= share(residents, lambda r: r.wechat_openid is not None) <= 0.8


def test_openids_look_like_wechat_openids(residents):
    openids = [r.wechat_openid for r in residents if r.wechat_openid]
    assert all(len(openid) == 28 and openid.startswith("o") for openid in openids)
    assert len(openids) == len(set(openids))


def test_demo_residents_pass_the_roster_import(residents):
    village_codes = {code for code, _ in demo.demo_areas() + demo.demo_grids()}
    buffer = io.StringIO()
    write_roster_csv(residents[:300], buffer)
    assert read_roster_csv(buffer.getvalue().encode(), known_area=village_codes.__contains__) == residents[:300]


def test_demo_users_are_an_author_an_approver_an_admin_and_a_grid_worker():
    users = demo.demo_users()
    assert sorted(role for _, role, _ in users) == ["admin", "approver", "author", "grid_worker"]
    assert all(len(password) >= 8 for _, _, password in users)


def test_a_large_county_has_a_village_and_loudspeaker_per_thousand_residents():
    county = demo.synthetic_county(1_000_000)
    villages = [code for code, _ in county.areas if areas.level(code) == "village"]
    assert len(villages) == 1000 == len(county.devices) == len(set(villages))
    assert set(demo.demo_areas()) <= set(county.areas)
    codes = {code for code, _ in county.areas}
    assert all(areas.parent(code) in codes for code in villages)
    assert {code[:6] for code in villages} == {"450702", "450703", "450721", "450722"}


def test_a_small_synthetic_county_is_the_demo_county():
    county = demo.synthetic_county(demo.DEMO_RESIDENTS)
    assert list(county.areas) == demo.demo_areas()
    assert list(county.residents()) == list(demo.demo_residents())


def test_a_county_too_large_for_its_towns_is_refused():
    with pytest.raises(ValueError, match="raise residents_per_village"):
        demo.synthetic_county(10**8)


def test_the_large_generator_yields_exactly_n_in_bounded_memory():
    # 50,000 keeps the test light under tracemalloc; holding them would take
    # about 28 MB (some 570 bytes a resident), the stream needs a few KB.
    county = demo.synthetic_county(50_000, residents_per_village=500)
    assert len(county.village_codes) == 100
    tracemalloc.start()
    try:
        count = sum(1 for _ in county.residents())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 50_000
    assert peak < 500_000


def test_every_demo_resident_lives_in_one_of_their_villages_two_grids(residents):
    grids = dict(demo.demo_grids())
    assert all(r.grid in grids and r.grid[:12] == r.area_code for r in residents)
    first_village = [r for r in residents if r.area_code == residents[0].area_code]
    assert {grids[r.grid] for r in first_village} == {"一组", "二组"}
    worked = {code for code, user in demo.demo_grid_assignments() if user == demo.DEMO_GRID_WORKER}
    assert len(worked) == 2 and all(code in grids for code in worked)
