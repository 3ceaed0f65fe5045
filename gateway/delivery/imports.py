"""Roster imports that do not fit in a request: the file kept, the work done by a worker.

An uploaded roster is kept under ``instance/imports/<id>`` (the owner's alone:
it holds residents' phones) and an import record in Redis says where it is:
``uploaded`` (the console's preview), ``queued``, ``running`` (with its
``stage`` and rows ``done`` of ``total``), then ``done`` (with the result) or
``failed`` (with the errors; nothing was imported). A worker runs it on the
``imports`` queue, so planning and sending never wait behind a roster, and
the web request answers at once with the import's id. The file is deleted
when the import ends, or after a day when it was never imported (a preview
left alone); the record is kept a week.

Redis keeps nothing across a restart, so a queued import also leaves a note
on disk beside its file (``<id>.queued``: who asked for it and how), deleted
with the file when the import ends. The reconciler (``requeue_stranded``)
queues again every import with a note but no live job: its record and job
were lost with Redis, or its worker died. The import is one transaction, so an
import killed half-way left nothing behind and simply runs again.

A roster of at most ``INLINE_BYTES`` is imported inside the request instead:
it takes well under a second, and the answer is the result itself.
"""
from __future__ import annotations

import json
import os
import re
import time
import uuid

from flask import current_app
from rq import get_current_job

from audiences.areas import AreaError, CsvErrors
from gateway.delivery import queues
from gateway.store import roster
from gateway.store.db import engine

INLINE_BYTES = 256 * 1024
KEEP_SECONDS = 7 * 24 * 3600
#: An upload not imported within this long (a preview left alone) is deleted.
ABANDONED_SECONDS = 24 * 3600
_KEY = "tongbao:roster-import:{}"
_ID = re.compile(r"[0-9a-f]{32}")
_NOTE = ".queued"


def save_upload(data: bytes, *, actor: str, filename: str = "", sheet: str | None = None) -> str:
    """Keep an uploaded roster for a later import; returns the import's id."""
    import_id = uuid.uuid4().hex
    folder = _folder()
    os.makedirs(folder, mode=0o700, exist_ok=True)
    _forget_abandoned(folder)
    fd = os.open(os.path.join(folder, import_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    _set(import_id, status="uploaded", actor=actor, filename=filename, sheet=sheet or "", size=len(data))
    return import_id


def upload_path(import_id: str) -> str:
    return os.path.join(_folder(), import_id)


def start(import_id: str, *, replace_area: str | None = None, here: bool = False) -> None:
    """Queue the import of a kept upload (``replace_area`` as ``roster.import_residents``),
    or with ``here`` run it at once in this process."""
    if here:
        _set(import_id, status="queued", replace_area=replace_area or "", stage="", done=0, total=0)
        run_import(import_id)
        return
    record = status(import_id)
    note = {"actor": record["actor"], "filename": record["filename"], "sheet": record["sheet"],
            "replace_area": replace_area or ""}
    # The note first: a reconciler passing before the job is queued queues one more, and
    # the first job, no longer the one the record names, then does nothing.
    temporary = upload_path(import_id) + _NOTE + ".tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(note, handle)
    os.replace(temporary, upload_path(import_id) + _NOTE)
    _enqueue(import_id, note)


def requeue_stranded() -> int:
    """Queue again the imports noted on disk that no live job holds; returns how many."""
    folder = _folder()
    if not os.path.isdir(folder):
        return 0
    requeued = 0
    for entry in os.scandir(folder):
        import_id = entry.name.removesuffix(_NOTE)
        if not entry.name.endswith(_NOTE) or not _ID.fullmatch(import_id):
            continue
        record = queues.connection().hgetall(_KEY.format(import_id))
        state = record.get(b"status", b"").decode()
        if state in ("done", "failed"):  # ended, but its worker died before tidying up
            _discard(import_id)
        elif not (b"job" in record and queues.job_is_live(record[b"job"].decode())):
            note = _read_note(import_id)
            if note is not None:
                _enqueue(import_id, note)
                requeued += 1
    return requeued


def _enqueue(import_id: str, note: dict) -> None:
    """Record the import as queued under a fresh job, then queue that job."""
    job_id = f"import-{import_id}-{uuid.uuid4().hex[:8]}"
    _set(import_id, status="queued", stage="", done=0, total=0, job=job_id, **note)
    queues.queue(queues.IMPORT_QUEUE).enqueue(
        "gateway.delivery.imports.run_import", import_id,
        job_id=job_id, result_ttl=0, job_timeout=3600, meta=queues.job_meta())


def run_import(import_id: str) -> None:
    """The job: import the kept file in one transaction, recording progress and the outcome.

    A job the reconciler has since replaced (the record names another job) does nothing."""
    record = status(import_id)
    if record is None or record["status"] not in ("queued", "running"):
        return
    job, latest = get_current_job(), queues.connection().hget(_KEY.format(import_id), "job")
    if job is not None and latest is not None and job.id != latest.decode():
        return
    _set(import_id, status="running")

    def progress(stage: str, done: int, total: int) -> None:
        _set(import_id, stage=stage, done=done, total=total)

    try:
        with engine().begin() as conn:
            result = roster.import_residents(conn, upload_path(import_id), record["actor"],
                                             replace_area=record["replace_area"] or None,
                                             sheet=record["sheet"] or None, progress=progress)
    except CsvErrors as problems:
        _set(import_id, status="failed", errors=json.dumps(error_rows(problems)), more_errors=problems.omitted)
    except AreaError as error:
        _set(import_id, status="failed", errors=json.dumps([{"line": None, "column": None,
                                                             "message": str(error)}]))
    except Exception as error:
        _set(import_id, status="failed", errors=json.dumps([{"line": None, "column": None,
                                                             "message": f"the import stopped: {error}"}]))
        _discard(import_id)
        raise
    else:
        _set(import_id, status="done", stage="", done=result.added + result.updated,
             result=json.dumps(result.as_dict()))
    # A process killed half-way (SystemExit, SIGKILL) rolled back and keeps the file
    # and the note, for the reconciler to run the import again.
    _discard(import_id)


def status(import_id: str) -> dict | None:
    """The import's record (without who started it), or ``None`` for no such import."""
    if not _ID.fullmatch(import_id):
        return None
    raw = queues.connection().hgetall(_KEY.format(import_id))
    if raw:
        record = {key.decode(): value.decode() for key, value in raw.items()}
    else:  # Redis lost it; a queued import's note still says what it is
        note = _read_note(import_id)
        if note is None:
            return None
        record = {"status": "queued", **note}
    answer = {"id": import_id, "status": record["status"], "filename": record.get("filename", ""),
              "actor": record.get("actor", ""), "sheet": record.get("sheet", ""),
              "replace_area": record.get("replace_area", ""), "stage": record.get("stage", ""),
              "done": int(record.get("done", 0)), "total": int(record.get("total", 0))}
    if "result" in record:
        answer["result"] = json.loads(record["result"])
    if "errors" in record:
        answer["errors"] = json.loads(record["errors"])
        answer["more_errors"] = int(record.get("more_errors", 0))
    return answer


def error_rows(problems: CsvErrors) -> list[dict]:
    """A roster's errors as the API and the import record give them."""
    return [{"line": e.line, "column": e.column, "message": e.message} for e in problems.errors]


def _folder() -> str:
    return os.path.join(current_app.instance_path, "imports")


def _set(import_id: str, **fields) -> None:
    key = _KEY.format(import_id)
    with queues.connection().pipeline() as pipe:
        pipe.hset(key, mapping={name: value for name, value in fields.items() if value is not None})
        pipe.expire(key, KEEP_SECONDS)
        pipe.execute()


def _read_note(import_id: str) -> dict | None:
    try:
        with open(upload_path(import_id) + _NOTE) as handle:
            return json.load(handle)
    except FileNotFoundError:  # the import ended meanwhile
        return None


def _forget_abandoned(folder: str) -> None:
    """Delete uploads older than ``ABANDONED_SECONDS``: previews nobody imported (phones in them)."""
    too_old = time.time() - ABANDONED_SECONDS
    for entry in os.scandir(folder):
        if (_ID.fullmatch(entry.name) and entry.stat().st_mtime < too_old
                and not os.path.exists(entry.path + _NOTE)):  # a queued import waits for a worker
            _discard(entry.name)


def _discard(import_id: str) -> None:
    for path in (upload_path(import_id) + _NOTE, upload_path(import_id)):
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
