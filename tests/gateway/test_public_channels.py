"""Broadcasters, signed webhooks and Weibo through the gateway (#22): planned as place channels
for every notice to their areas, POSTed signed to a stand-in that checks the signature and the
GB/T 35965.1 document, the cancel sent wherever the original went, a station that is down
retried with backoff and shown failing in the console, and drills kept to test destinations."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from gateway.delivery import queues
from gateway.store import destinations
from gateway.store.schema import deliveries
from tests.conftest import run_jobs
from tests.fakes.broadcaster_server import FakeBroadcaster
from tests.fakes.weibo_server import FakeWeibo
from tests.gateway.conftest import DISTRICT, OTHER_DISTRICT_VILLAGE, VILLAGE_A, announcement
from tests.gateway.console.conftest import csrf_token, login

pytestmark = pytest.mark.integration
SECRET = "station-shared-secret-0001"
PUBLIC = "https://tb.example.gov.cn"
FAILING = '<td class="destination-status"><span class="badge offline">'


@pytest.fixture
def station():
    server = FakeBroadcaster(SECRET).start()
    yield server
    server.stop()


@pytest.fixture
def weibo():
    server = FakeWeibo("weibo-token", "tb.example.gov.cn").start()
    yield server
    server.stop()


@pytest.fixture
def app(make_app, database_url, weibo, request):
    return make_app(database_url, WEIBO_ACCESS_TOKEN="weibo-token", WEIBO_API_BASE=weibo.url,
                    PUBLIC_BASE_URL=PUBLIC, **getattr(request, "param", {}))


def register(app, station, name, kind, area, *, test=False, secret=SECRET):
    with app.extensions["engine"].begin() as conn:
        return destinations.add(conn, name=name, kind=kind, area_code=area,
                                url=f"{station.url}/{name}", secret=secret, test_destination=test)


def publish(api, **fields):
    created = api("author").post("/api/v1/announcements", json=announcement(**fields)).json
    api("approver").post(f"/api/v1/announcements/{created['id']}/approve")
    return created["id"]


def ledger(app, announcement_id, channels=("broadcast",)):
    with app.extensions["engine"].connect() as conn:
        return conn.execute(select(deliveries).where(deliveries.c.announcement_id == announcement_id,
                                                     deliveries.c.channel.in_(channels))).all()


def test_each_destination_in_the_area_and_weibo_get_the_notice_and_then_its_cancel(
        app, api, station, weibo):
    register(app, station, "tv", "tv", DISTRICT)
    register(app, station, "radio", "radio", "450700")  # the city's: contains the district
    register(app, station, "far", "platform", OTHER_DISTRICT_VILLAGE)  # another district's
    register(app, station, "app", "webhook", VILLAGE_A)  # within the district
    draft = api("author").post("/api/v1/announcements", json=announcement()).json["id"]
    preview = api("approver").get(f"/api/v1/announcements/{draft}/preview").json
    assert (preview["deliveries"]["broadcast"], preview["deliveries"]["webhook"],
            preview["deliveries"]["weibo"]) == (2, 1, 1)

    original = publish(api)
    run_jobs(app)
    got = {r.path: r for r in station.received}
    assert set(got) == {"/tv", "/radio", "/app"} and not station.refused
    document = got["/tv"].document
    assert document.findtext("msgType") == "Alert" and document.findtext("info/severity") == "Yellow"
    assert [a.findtext("geocode") for a in document.findall("info/area")] == [DISTRICT]
    assert got["/tv"].crawl.startswith("暴雨红色预警：") and len(got["/tv"].crawl) <= 60
    assert got["/app"].json["cap_url"] == f"{PUBLIC}/api/v1/announcements/{original}.cap"
    assert weibo.posts[0].endswith(f"{PUBLIC}/a/{original}")
    status = api("author").get(f"/api/v1/announcements/{original}").json
    assert status["deliveries"]["broadcast"]["delivered"] == 2
    assert status["deliveries"]["weibo"]["delivered"] == 1
    assert status["personal_deliveries"] == sum(
        sum(status["deliveries"][c].values()) for c in ("sms", "voice", "wechat")
        if c in status["deliveries"])
    console = app.test_client()
    login(console, "author")
    report = console.get(f"/announcements/{original}/disclosure").get_data(as_text=True)
    places = report.split('id="places"', 1)[1].split("</table>", 1)[0]
    assert places.count("<tr>") == 5  # the header, tv, radio, the webhook and Weibo
    assert "<td>radio</td>" in places and "<td>app</td>" in places

    station.received.clear()
    cancelled = api("approver").post(f"/api/v1/announcements/{original}/cancel", json={})
    assert cancelled.status_code < 300, cancelled.json
    run_jobs(app)
    got = {r.path: r for r in station.received}
    assert set(got) == {"/tv", "/radio", "/app"}
    assert got["/tv"].document.findtext("msgType") == "Cancel"
    assert got["/tv"].document.findtext("references").split(",")[1] == \
        document.findtext("identifier")
    assert got["/app"].json["notice"]["msg_type"] == "cancel"
    assert len(weibo.posts) == 2 and weibo.posts[1].startswith("【更正】")


def test_a_drill_goes_only_to_test_destinations_and_never_to_weibo(app, api, station, weibo):
    register(app, station, "tv", "tv", DISTRICT)
    register(app, station, "rehearsal", "tv", DISTRICT, test=True)
    drill = publish(api, status="exercise")
    run_jobs(app)
    assert [r.path for r in station.received] == ["/rehearsal"]
    assert station.received[0].document.findtext("status") == "Exercise"
    assert not weibo.posts
    assert {r.channel for r in ledger(app, drill, ("broadcast", "webhook", "weibo"))} == {"broadcast"}


@pytest.mark.parametrize("app", [{"RETRY_DELAY_SECONDS": 2}], indirect=True)
def test_a_station_that_is_down_is_retried_with_backoff_and_shown_failing(app, api, station):
    register(app, station, "tv", "tv", DISTRICT)
    station.down = True
    notice = publish(api)
    run_jobs(app, scheduled=False)
    [row] = ledger(app, notice)
    assert row.status == "planned" and "503" in row.last_error  # to be tried again

    console = app.test_client()
    login(console, "approver")
    assert FAILING in console.get("/destinations").get_data(as_text=True)

    time.sleep(2.1)  # the first retry waits RETRY_DELAY_SECONDS
    run_jobs(app)
    assert station.attempts_while_down == 2 and ledger(app, notice)[0].status == "planned"
    # The next wait doubled to 4 s. Read from the schedule, not by running jobs again at once:
    # on a loaded machine that run could itself outlast the wait. rq keeps whole seconds, so a
    # retry due 4 s after the refusal is due more than 3 s after it; one due after 2 s is not.
    due = _retry_due(app, "broadcast")
    assert due > station.last_refused_at + 3
    station.down = False
    time.sleep(max(0.0, due - time.time()) + 0.1)
    run_jobs(app)
    [row] = ledger(app, notice)
    assert row.status == "delivered" and row.attempts == 3
    assert [r.path for r in station.received] == ["/tv"]
    assert FAILING not in console.get("/destinations").get_data(as_text=True)


def _retry_due(app, channel: str) -> float:
    """When the one retry rq's scheduler holds for ``channel`` is due (Unix time)."""
    with app.app_context():
        registry = queues.queue(channel).scheduled_job_registry
        [job_id] = registry.get_job_ids()
        return registry.get_scheduled_time(job_id).timestamp()


def test_a_wrong_secret_is_refused_by_the_station_and_fails(app, api, station):
    register(app, station, "tv", "tv", DISTRICT, secret="not-the-station-secret")
    notice = publish(api)
    run_jobs(app)
    [row] = ledger(app, notice)
    assert row.status == "failed" and "401" in row.last_error
    assert station.refused and not station.received


def test_the_pull_feed_needs_the_destinations_own_token(app, api, station, county):
    mine = register(app, station, "tv", "tv", DISTRICT)
    other = register(app, station, "far", "platform", OTHER_DISTRICT_VILLAGE)
    notice = publish(api)
    run_jobs(app)
    client = app.test_client()
    path = f"/feeds/destinations/{mine.id}/alerts.xml"
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": f"Bearer {other.feed_token}"}).status_code == 401
    feed = client.get(path, headers={"Authorization": f"Bearer {mine.feed_token}"})
    assert feed.status_code == 200 and feed.mimetype == "application/xml"
    assert feed.get_data(as_text=True).count("<alert>") == 1
    assert f"_{notice % 10}</identifier>" in feed.get_data(as_text=True)
    far = client.get(f"/feeds/destinations/{other.id}/alerts.xml",
                     headers={"Authorization": f"Bearer {other.feed_token}"})
    assert "<alert>" not in far.get_data(as_text=True)


def test_admins_add_and_remove_destinations_in_the_console(app, county):
    console = app.test_client()
    login(console, "admin")
    form = {"csrf_token": csrf_token(console, "/destinations"), "name": "钦州交通广播",
            "kind": "radio", "area_code": "450700", "url": "http://example.com/ingest"}
    refused = console.post("/destinations", data=form)
    assert refused.status_code == 422 and "https://" in refused.get_data(as_text=True)
    added = console.post("/destinations", data={**form, "url": "https://radio.example.cn/in"})
    assert added.status_code == 200 and "destination-added" in added.get_data(as_text=True)
    with app.extensions["engine"].connect() as conn:
        assert [row.name for row in destinations.listed(conn)] == ["钦州交通广播"]
    console.post("/destinations", data={"csrf_token": csrf_token(console, "/destinations"),
                                        "action": "remove", "name": "钦州交通广播"})
    with app.extensions["engine"].connect() as conn:
        assert destinations.listed(conn) == []
    login(console, "approver")
    assert console.post("/destinations", data={**form, "csrf_token": csrf_token(
        console, "/destinations")}).status_code == 403


def test_the_cli_adds_lists_and_removes_destinations(app, county):
    def run(*args):
        return app.test_cli_runner().invoke(args=list(args))

    added = run("destinations", "add", "钦南电视台", "--kind", "tv", "--area", DISTRICT,
                "--url", "https://tv.example.cn/in", "--secret", "x" * 20)
    assert added.exit_code == 0 and "x" * 20 in added.output and "feed token" in added.output
    listed = run("destinations", "list")
    assert "钦南电视台\ttv\t450702\thttps://tv.example.cn/in" in listed.output
    assert "x" * 20 not in listed.output  # never the secret
    refused = run("destinations", "add", "plain", "--kind", "radio", "--area", DISTRICT,
                  "--url", "http://radio.example.cn/in")
    assert refused.exit_code != 0 and "https://" in refused.output
    assert run("destinations", "remove", "钦南电视台").exit_code == 0
    assert "no destinations registered" in run("destinations", "list").output
