"""The grid pages (gateway/web/console/grids.py): the admin's registry, the grid worker's phone
page and its taps, and the rule that a grid worker gets nothing else — no console page and no
API route gives them more than an anonymous visitor gets."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select, update

from gateway.store import accounts, grids
from gateway.store.schema import audit_log, grid_visits, grid_workers, grids as grid_table, residents
from tests.gateway.conftest import VILLAGE_A, VILLAGE_B
from tests.gateway.console.conftest import csrf_token, login, logout, page, released

pytestmark = pytest.mark.integration

GRID_A = VILLAGE_A + "001"
GRID_B = VILLAGE_B + "001"
WORKER = "gridworker"
#: The grid worker's own routes; auth's (log in, out, language, keep-alive) are everyone's.
THEIRS = {"grids.work", "grids.taps"}


@pytest.fixture
def field(app, county):
    """Grid A (张伟, 李娜) worked by ``gridworker``; grid B (陈桂英) by nobody."""
    with app.extensions["engine"].begin() as conn:
        grids.add_grid(conn, GRID_A, "一组", "test")
        grids.add_grid(conn, GRID_B, "二组", "test")
        accounts.create_user(conn, WORKER, "grid_worker", f"{WORKER}-password")
        county[WORKER] = accounts.create_token(conn, WORKER)
        grids.assign(conn, GRID_A, WORKER, "test")
        for name, code in (("张伟", GRID_A), ("李娜", GRID_A), ("陈桂英", GRID_B)):
            conn.execute(update(residents).where(residents.c.name == name).values(grid=code))
        return dict(conn.execute(select(residents.c.name, residents.c.id)).all())


def _path(rule) -> str:
    return re.sub(r"<(?:int:)?[^>]+>", lambda m: "1" if m.group(0).startswith("<int:") else "x",
                  rule.rule)


def _refused(response) -> bool:
    return response.status_code >= 400 or "/login" in response.headers.get("Location", "")


def test_a_grid_worker_gets_no_page_or_api_route_an_anonymous_visitor_does_not(app, field, api):
    released(app.test_client())  # announcement 1, with deliveries and residents to show
    worker, anonymous = app.test_client(), app.test_client()
    login(worker, WORKER)
    token = csrf_token(worker, "/grid")
    opened = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in THEIRS or rule.endpoint.startswith("auth."):
            continue
        for method in sorted(rule.methods & {"GET", "POST"}):
            path = _path(rule)
            headers = {"X-CSRFToken": token, **api(WORKER).headers}
            as_worker = worker.open(path, method=method, headers=headers)
            as_nobody = anonymous.open(path, method=method)
            if _refused(as_nobody) and not _refused(as_worker):
                opened.append((method, path, as_worker.status_code))
    assert opened == []


def test_a_grid_worker_token_is_refused_by_the_api(api, field):
    response = api(WORKER).get("/api/v1/residents")
    assert response.status_code == 403
    assert "grid workers use their page" in response.get_json()["error"]


def test_a_grid_worker_lands_on_their_page_and_sees_only_their_grids_people(app, client, field):
    announcement_id = released(client)
    logout(client)
    response = login(client, WORKER)
    assert response.location.endswith("/grid")
    html = page(client.get("/grid"))
    assert "张伟" in html and "李娜" in html and "陈桂英" not in html
    assert 'href="tel:+8613800000013"' in html and "视障" in html
    assert "当面告知" in html and "不在家" in html and "搬走/信息有误" in html and "拒绝" in html
    assert f'data-announcement="{announcement_id}"' in html
    with app.extensions["engine"].connect() as conn:
        viewed = conn.execute(select(audit_log.c.actor, audit_log.c.detail)
                              .where(audit_log.c.action == "view",
                                     audit_log.c.target == "grid_worklist")).one()
    assert viewed.actor == WORKER and '"people": 2' in viewed.detail


def test_taps_are_recorded_once_per_id_and_refused_ones_say_why(app, client, field):
    announcement_id = released(client)
    logout(client)
    login(client, WORKER)
    token = csrf_token(client, "/grid")
    taps = [{"id": "tap-console-1", "announcement": announcement_id, "resident": field["张伟"],
             "outcome": "told"},
            {"id": "tap-console-2", "announcement": announcement_id, "resident": field["陈桂英"],
             "outcome": "told"}]
    first = client.post("/grid/taps", json={"taps": taps}, headers={"X-CSRFToken": token})
    assert first.status_code == 200
    assert [(r["id"], r["status"]) for r in first.get_json()["results"]] == \
        [("tap-console-1", "recorded"), ("tap-console-2", "refused")]
    assert "not one of this notice's people in your grids" in first.get_json()["results"][1]["error"]
    again = client.post("/grid/taps", json={"taps": taps[:1]}, headers={"X-CSRFToken": token})
    assert again.get_json()["results"] == [{"id": "tap-console-1", "status": "already"}]
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_visits.c.tap_id)).scalars().all() == ["tap-console-1"]
    assert "张伟" not in page(client.get("/grid"))


def test_those_told_a_withdrawn_notice_at_the_door_are_on_the_page_under_its_withdrawal(
        app, client, field):
    from gateway.delivery import lifecycle, planner
    announcement_id = released(client)
    logout(client)
    login(client, WORKER)
    told = {"id": "tap-door-1", "announcement": announcement_id, "resident": field["张伟"],
            "outcome": "told"}
    client.post("/grid/taps", json={"taps": [told]},
                headers={"X-CSRFToken": csrf_token(client, "/grid")})
    with app.app_context(), app.extensions["engine"].begin() as conn:
        withdrawal = lifecycle.cancel(conn, announcement_id, accounts.find_user(conn, "author"),
                                      sender="tongbao@test.example.gov.cn").announcement_id
    with app.app_context():
        planner.plan(app.extensions["engine"], withdrawal, app.extensions["policy"])
    html = page(client.get("/grid"))
    assert f'data-announcement="{withdrawal}"' in html
    assert f'data-announcement="{announcement_id}"' not in html
    assert "已撤销 ·" in html and "此通知已撤销。请告知以下居民该通知不再有效" in html
    assert "张伟" in html and "李娜" not in html  # only the one told at the door
    assert f"被撤销的通知: 当面告知 · {WORKER}" in html
    result = client.post("/grid/taps", json={"taps": [{**told, "id": "tap-door-2",
                                                        "announcement": withdrawal}]},
                         headers={"X-CSRFToken": csrf_token(client, "/grid")}).get_json()
    assert result["results"] == [{"id": "tap-door-2", "status": "recorded"}]
    assert "张伟" not in page(client.get("/grid"))


@pytest.mark.parametrize("body", [None, {"taps": []}, {"taps": "x"}, [1], {"taps": [{}] * 201}])
def test_a_malformed_batch_of_taps_is_a_400_not_a_500(client, field, body):
    login(client, WORKER)
    response = client.post("/grid/taps", json=body,
                           headers={"X-CSRFToken": csrf_token(client, "/grid")})
    assert response.status_code == 400 and "taps" in response.get_json()["error"]


def test_taps_without_the_csrf_token_are_refused(app, client, field):
    announcement_id = released(client)
    logout(client)
    login(client, WORKER)
    response = client.post("/grid/taps", json={"taps": [{
        "id": "tap-no-token", "announcement": announcement_id, "resident": field["李娜"],
        "outcome": "told"}]})
    assert response.status_code in (302, 400)  # the console's answer to a stale form
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_visits.c.id)).first() is None


@pytest.mark.parametrize("role_user", ["author", "approver", "admin"])
def test_other_roles_cannot_open_the_grid_workers_page(client, field, role_user):
    login(client, role_user)
    assert client.get("/grid").status_code == 403


def test_the_admin_adds_a_grid_and_assigns_and_removes_a_worker(app, client, field):
    login(client, "admin")
    token = csrf_token(client, "/grids")
    code = VILLAGE_B + "002"
    client.post("/grids", data={"csrf_token": token, "action": "add", "code": code, "name": "三组"})
    client.post("/grids", data={"csrf_token": token, "action": "assign", "code": code,
                                "worker": WORKER})
    html = page(client.get("/grids"))
    assert "三组" in html and code in html
    with app.extensions["engine"].connect() as conn:
        assert (code, "三组") in conn.execute(select(grid_table.c.code, grid_table.c.name)).all()
        assert conn.execute(select(grid_workers.c.grid_code)).scalars().all().count(code) == 1
    client.post("/grids", data={"csrf_token": token, "action": "unassign", "code": code,
                                "worker": WORKER})
    with app.extensions["engine"].connect() as conn:
        assert code not in conn.execute(select(grid_workers.c.grid_code)).scalars().all()
        actions = conn.execute(select(audit_log.c.action).where(
            audit_log.c.target == f"grid:{code}")).scalars().all()
    assert actions == ["grid", "assign", "unassign"]


@pytest.mark.parametrize("form, reason", [
    ({"action": "add", "code": "450702100299001", "name": "x"}, "村 450702100299 不在地区登记中"),
    ({"action": "add", "code": "123", "name": "x"}, "“123”不是网格编码"),
    ({"action": "add", "code": GRID_A + "9", "name": "x"}, "不是网格编码"),
    ({"action": "add", "code": VILLAGE_A + "009", "name": ""}, "网格名称须为 1 至 100 个字符"),
    ({"action": "assign", "code": GRID_A, "worker": "author"}, "author 不是网格员"),
    ({"action": "assign", "code": GRID_A, "worker": "nobody"}, "没有名为 nobody 的用户"),
    ({"action": "assign", "code": VILLAGE_A + "009", "worker": WORKER}, "网格 450702100201009 不在网格登记中"),
])
def test_a_bad_change_to_the_registry_says_so_and_changes_nothing(app, client, field, form, reason):
    login(client, "admin")
    response = client.post("/grids", data={"csrf_token": csrf_token(client, "/grids"), **form},
                           follow_redirects=True)
    html = page(response)
    assert response.status_code == 200 and "未作任何更改" in html and reason in html
    with app.extensions["engine"].connect() as conn:
        assert conn.execute(select(grid_table.c.code)).scalars().all() == [GRID_A, GRID_B]


def test_a_resident_reported_moved_is_marked_for_review_until_the_admin_saves_them(app, client,
                                                                                 field):
    with app.extensions["engine"].begin() as conn:
        conn.execute(update(residents).where(residents.c.id == field["李娜"])
                     .values(review_note="已搬到县城"))
    login(client, "admin")
    assert "待核实" in page(client.get("/residents?q=李娜"))
    form = page(client.get(f"/residents/{field['李娜']}/edit"))
    assert "已搬到县城" in form and f'name="grid" value="{GRID_A}"' in form
    response = client.post(f"/residents/{field['李娜']}/edit", data={
        "csrf_token": csrf_token(client, f"/residents/{field['李娜']}/edit"), "name": "李娜",
        "phone": "13800000019", "area_code": VILLAGE_A, "grid": GRID_A, "language": "zh"})
    assert response.status_code == 302
    assert "待核实" not in page(client.get("/residents?q=李娜"))
    with app.extensions["engine"].connect() as conn:
        row = conn.execute(select(residents.c.grid, residents.c.review_note, residents.c.phone)
                           .where(residents.c.id == field["李娜"])).one()
    assert tuple(row) == (GRID_A, None, "+8613800000019")


def test_the_office_sees_each_village_and_grid_as_a_page_and_a_csv(app, client, field):
    announcement_id = released(client)  # the approver is left logged in
    html = page(client.get(f"/announcements/{announcement_id}/grids"))
    assert "按村和网格" in html and "一组" in html and "gridworker" in html and "无网格员" in html
    csv_text = page(client.get(f"/announcements/{announcement_id}/grids.csv"))
    assert csv_text.startswith("\ufeff村,网格,目标人数,经自动渠道送达,当面告知,")
    assert f"一组 {GRID_A}" in csv_text
    assert client.get("/announcements/999/grids").status_code == 404
    logout(client)
    login(client, WORKER)
    assert client.get(f"/announcements/{announcement_id}/grids").status_code == 403
