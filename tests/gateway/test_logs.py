"""The logs (issue 20, item 5): one JSON event per line, phones and openids masked, a request
id per web request that the jobs it queues log too."""
from __future__ import annotations

import json
import logging
import sys

import pytest
from rq.job import Job

from gateway import logs
from gateway.delivery import queues, workers
from tests.gateway.conftest import announcement

PHONE = "+8613800000015"
MOBILE = "13900000002"
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"  # the shape of a real one: 28 characters from "o"


@pytest.fixture
def lines(capsys):
    """The log lines written to stderr since the last call, parsed when JSON."""
    def read(parse: bool = True) -> list:
        written = capsys.readouterr().err.splitlines()
        return [json.loads(line) for line in written] if parse else written
    return read


@pytest.fixture
def json_logs():
    logs.configure("json")
    yield
    logs.configure("json")


def test_a_phone_in_the_message_and_in_its_args_is_masked(json_logs, lines):
    log = logging.getLogger("gateway.test")
    log.warning(f"sms to {PHONE} failed: %s, also %s", f"the 'To' number {MOBILE} is not valid",
                "138 0013 8000", extra={"address": PHONE, "delivery_id": 42})
    [line] = lines()
    assert line["event"] == ("sms to +86138****0015 failed: the 'To' number 139****0002 is not "
                             "valid, also 138****8000")
    assert line["address"] == "+86138****0015" and line["delivery_id"] == 42
    logging.getLogger("gateway.test").info("sent", extra={"address": "o_young_a"})
    assert lines()[0]["address"] == "o_y****_a"  # an address field is masked whatever it holds
    assert line["level"] == "WARNING" and line["logger"] == "gateway.test"
    assert line["time"].endswith("+00:00")


def test_a_phone_in_a_url_encoded_request_is_masked(json_logs, lines):
    logging.getLogger("twilio.http_client").warning("POST /Messages.json To=%2B8613800000015&Body=x")
    assert lines()[0]["event"] == "POST /Messages.json To=%2B86138****0015&Body=x"


def test_openids_are_masked_by_shape_and_by_name_and_ids_are_left_alone(json_logs, lines):
    log = logging.getLogger("gateway.test")
    log.info("wechat %s; touser=%s, {'openid': 'o_deafw1'}; job deliver-12-sms-3-ab12cd34 "
             "at 1733150000123, batch 20261202", OPENID, "o_young_a")
    [line] = lines()
    assert line["event"] == ("wechat oUp****6o; touser=o_y****_a, {'openid': '****'}; job "
                             "deliver-12-sms-3-ab12cd34 at 1733150000123, batch 20261202")


def test_a_traceback_quoting_a_number_is_masked_and_stays_on_one_line(json_logs, lines):
    try:
        raise ValueError(f"Twilio: 21211 invalid 'To' number {PHONE}")
    except ValueError:
        logging.getLogger("gateway.test").exception("send failed")
    [raw] = lines(parse=False)
    line = json.loads(raw)
    assert PHONE not in raw and "+86138****0015" in line["exception"]
    assert line["exception"].startswith("Traceback") and line["event"] == "send failed"


def test_text_format_names_the_ids_it_knows(lines):
    logs.configure("text")
    try:
        with logs.bound(request_id="r-1", announcement_id=7):
            logging.getLogger("gateway.test").warning("planned to %s", PHONE)
    finally:
        logs.configure("json")
    [line] = lines(parse=False)
    assert line.endswith("WARNING gateway.test: planned to +86138****0015 "
                         "[request_id=r-1 announcement_id=7]")


def test_configure_again_replaces_its_handler_and_keeps_others():
    other = logging.StreamHandler(sys.stdout)
    root = logging.getLogger()
    root.addHandler(other)
    try:
        logs.configure("text")
        logs.configure("json", "WARNING")
        ours = [h for h in root.handlers if getattr(h, "tongbao", False)]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        assert other in root.handlers and root.level == logging.WARNING
    finally:
        root.removeHandler(other)
        logs.configure("json")


@pytest.mark.parametrize("given, kept", [
    ("req-2026-0001", True), ("5f0c7a4e-2b1d-4c55-9a57-5a3c1ee8b1d2", True),
    ("two words", False), ("x" * 101, False), ("<script>", False), ("", False),
])
def test_a_sane_request_id_is_kept_and_answered_any_other_replaced(app, given, kept):
    answer = app.test_client().get("/healthz", headers={"X-Request-ID": given})
    returned = answer.headers["X-Request-ID"]
    assert (returned == given) is kept
    if not kept:
        assert len(returned) == 32 and int(returned, 16) >= 0


def test_a_request_logs_its_id_and_the_jobs_it_queues_carry_it(api, app, lines):
    logs.configure("json")
    created = api("author").post("/api/v1/announcements", json=announcement(),
                                 headers={"X-Request-ID": "partner-0001"})
    announcement_id = created.get_json()["id"]
    approved = api("approver").post(f"/api/v1/announcements/{announcement_id}/approve")
    request_id = approved.headers["X-Request-ID"]
    answered = [line for line in lines() if line["logger"] == "gateway.web.request_ids"]
    assert all(line["event"].endswith(" ms") for line in answered)
    assert [(line["event"].rsplit(" ", 2)[0], line["request_id"], line.get("announcement_id"))
            for line in answered] == [
        ("POST /api/v1/announcements 201", "partner-0001", None),
        (f"POST /api/v1/announcements/{announcement_id}/approve 200", request_id,
         announcement_id)]
    with app.app_context():
        plan_job = Job.fetch(queues.plan_job_id(announcement_id), connection=queues.connection())
        assert plan_job.meta == {"request_id": request_id, "announcement_id": announcement_id}
        worker = workers.GatewayWorker([queues.queue(queues.PLAN_QUEUE)],
                                       connection=queues.connection(), name="test-logs-worker")
        worker.work(burst=True, with_scheduler=False)
        queued = [job for name in queues.CHANNEL_QUEUES for job in queues.queue(name).jobs]
    # The speech was queued by the submit: it carries the submit's id; the batches the approval's.
    speech_jobs = [job for job in queued if job.id.startswith(f"speech-{announcement_id}-")]
    batch_jobs = [job for job in queued if job.id.startswith(f"deliver-{announcement_id}-")]
    assert speech_jobs and {job.meta["request_id"] for job in speech_jobs} == {"partner-0001"}
    assert len(speech_jobs) + len(batch_jobs) == len(queued)
    started = [line for line in lines() if line["event"].startswith(f"job plan-{announcement_id}")]
    assert started and started[0]["request_id"] == request_id
    assert started[0]["announcement_id"] == announcement_id
    assert started[0]["job_id"] == f"plan-{announcement_id}"
    # The plan job queued the deliveries: the request's id goes on with them.
    assert batch_jobs and {job.meta["request_id"] for job in batch_jobs} == {request_id}
