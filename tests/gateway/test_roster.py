"""Editing one resident with the roster import's rules, and the audit entry it leaves."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from audiences.areas import CsvErrors
from gateway.store import roster
from gateway.store.schema import audit_log, residents
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B

pytestmark = pytest.mark.integration

GOOD_FIELDS = {"name": "李娜", "phone": "13800000099", "wechat_openid": "", "area_code": VILLAGE_B,
               "birth_year": "1990", "visually_impaired": "0", "hearing_impaired": "1",
               "has_smartphone": "1", "language": "zh", "opt_out": "wechat",
               "test_audience": "0"}


def resident_id_of(conn, name: str) -> int:
    return conn.execute(select(residents.c.id).where(residents.c.name == name)).scalar_one()


def stored(conn, resident_id: int):
    return conn.execute(select(residents).where(residents.c.id == resident_id)).one()


def edits(conn) -> list:
    return conn.execute(select(audit_log).where(audit_log.c.action == "edit")).all()


def test_an_edit_is_normalised_stored_and_audited(app, county):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        resident_id = resident_id_of(conn, "李娜")
        roster.update_resident(conn, resident_id, GOOD_FIELDS, "admin")
    with engine.connect() as conn:
        row = stored(conn, resident_id)
        entries = edits(conn)
    assert (row.phone, row.area_code, row.opt_out) == ("+8613800000099", VILLAGE_B, "wechat")
    assert row.hearing_impaired and not row.visually_impaired
    assert [(e.actor, e.target) for e in entries] == [("admin", f"resident:{resident_id}")]
    assert VILLAGE_B in entries[0].detail


def test_written_and_spoken_languages_are_stored_in_their_canonical_form(app, county):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        resident_id = resident_id_of(conn, "李娜")
        roster.update_resident(conn, resident_id, {**GOOD_FIELDS, "language": "zh-CN",
                                                   "spoken_language": "zh-yue"}, "admin")
        yue = stored(conn, resident_id)
        roster.update_resident(conn, resident_id, {**GOOD_FIELDS, "language": "za"}, "admin")
        za = stored(conn, resident_id)
    assert (yue.language, yue.spoken_language) == ("zh", "yue")
    assert (za.language, za.spoken_language) == ("za", "za")  # spoken defaults to written


@pytest.mark.parametrize("changes, column", [
    ({"phone": "12345"}, "phone"),
    ({"area_code": "450702999999"}, "area_code"),
    ({"birth_year": "1850"}, "birth_year"),
    ({"language": "xx-!!"}, "language"),
    ({"spoken_language": "xx"}, "spoken_language"),
    ({"name": ""}, "name"),
    ({"phone": "", "wechat_openid": ""}, "phone"),
])
def test_a_bad_edit_names_the_field_and_changes_nothing(app, county, changes, column):
    engine = app.extensions["engine"]
    with engine.connect() as conn:
        resident_id = resident_id_of(conn, "李娜")
        before = stored(conn, resident_id)
    with pytest.raises(CsvErrors) as refused, engine.begin() as conn:
        roster.update_resident(conn, resident_id, {**GOOD_FIELDS, **changes}, "admin")
    assert column in {error.column for error in refused.value.errors}
    with engine.connect() as conn:
        assert stored(conn, resident_id) == before and edits(conn) == []


def test_an_unknown_resident_is_refused_without_an_audit_entry(app, county):
    engine = app.extensions["engine"]
    with pytest.raises(LookupError), engine.begin() as conn:
        roster.update_resident(conn, 999_999, {**GOOD_FIELDS, "area_code": VILLAGE_A}, "admin")
    with engine.connect() as conn:
        assert edits(conn) == []


def test_a_phone_marked_invalid_stays_so_until_edited_or_listed_in_a_roster_again(app, county):
    engine = app.extensions["engine"]
    with engine.begin() as conn:
        resident_id = resident_id_of(conn, "李娜")
        phone = stored(conn, resident_id).phone
        assert roster.mark_phone_invalid(conn, resident_id, phone, "[21211] invalid phone number")
        assert not roster.mark_phone_invalid(conn, resident_id, "+8613800000077", "another")
        roster.update_resident(conn, resident_id, {**GOOD_FIELDS, "phone": phone}, "admin")
    with engine.connect() as conn:
        assert stored(conn, resident_id).phone_invalid == "[21211] invalid phone number"
    header = "name,phone,area_code\n"
    with engine.begin() as conn:  # a roster listing them again, the same number
        result = roster.import_residents(conn, f"{header}李娜,{phone},{VILLAGE_A}\n".encode(), "admin")
    with engine.connect() as conn:
        assert (result.updated, stored(conn, resident_id).phone_invalid) == (1, None)
    with engine.begin() as conn:
        roster.mark_phone_invalid(conn, resident_id, phone, "[30005] unknown or inactive number")
        roster.update_resident(conn, resident_id, GOOD_FIELDS, "admin")  # a new phone
    with engine.connect() as conn:
        assert stored(conn, resident_id).phone_invalid is None


def test_migration_0010_gives_residents_their_written_language_as_spoken(tmp_path):
    from alembic import command

    from gateway.store import db
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = db._alembic_config(engine)
    command.upgrade(config, "0009")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO residents (name, phone, area_code, visually_impaired, hearing_impaired, "
            "has_smartphone, language, opt_out, test_audience) VALUES "
            "('Ann', '+8613800000091', '450702100201', 0, 0, 1, 'en', '', 0), "
            "('李', '+8613800000092', '450702100201', 0, 0, 1, 'zh', '', 0)")
    command.upgrade(config, "0010")
    with engine.connect() as conn:
        rows = conn.execute(select(residents.c.name, residents.c.spoken_language)
                            .order_by(residents.c.name)).all()
    assert [tuple(row) for row in rows] == [("Ann", "en"), ("李", "zh")]
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_import_adding_many_residents_leaves_postgresqls_statistics_current(
        app, county, monkeypatch):
    monkeypatch.setattr(roster, "ANALYZE_AFTER_ADDING", 3)
    engine = app.extensions["engine"]

    def imported(count: int, first: int) -> None:
        lines = "".join(f"居民{n},+86139000{n:05d},{VILLAGE_B}\n" for n in range(first, first + count))
        with engine.begin() as conn:
            assert roster.import_residents(conn, f"name,phone,area_code\n{lines}".encode(),
                                           "admin").added == count

    def statistics() -> tuple[float, int]:
        with engine.connect() as conn:
            return (conn.execute(text("SELECT reltuples FROM pg_class "
                                      "WHERE relname = 'residents'")).scalar_one(),
                    conn.execute(select(func.count()).select_from(residents)).scalar_one())

    imported(2, first=1)  # fewer than the threshold: the table is left to autovacuum
    assert statistics()[0] == -1  # never analysed
    imported(5, first=10)
    tuples, on_roster = statistics()
    assert tuples == on_roster
