"""Server texts in the officer's language (gateway/web/console/wording.py): roster errors,
the unreached CSV's "tried" column, audit details, and what has no wording passing through."""
from __future__ import annotations

import ast
import csv
import io
import json
import re
from pathlib import Path

import pytest

from gateway.store import grids
from gateway.web.console import wording
from tests.gateway.conftest import VILLAGE_A
from tests.gateway.console.conftest import login, page
from tests.gateway.console.test_roster_import import upload

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_roster_errors_are_listed_in_chinese(client):
    login(client, "admin")
    roster = (f"姓名,手机号,村代码,出生年份\n周杰,abc,{VILLAGE_A},1990\n"
              f"李四,13900000002,999999999999,19x0\n,13900000003,{VILLAGE_A},1990\n"
              f"王五,13900000004,45070210020,1990\n")
    html = page(upload(client, roster.encode("gbk"), "名单.csv"))
    problems = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td><td>(.*?)</td></tr>", html)
    assert ("2", "手机号", "&#39;abc&#39; 不是电话号码。") in problems
    assert ("3", "出生年份", "&#39;19x0&#39; 不是年份。") in problems
    assert ("4", "姓名", "为空。") in problems
    assert ("5", "村代码", "行政区划代码 &#39;45070210020&#39; 须为 6 位（省、市、县）、9 位（乡镇）"
                          "或 12 位（村）。") in problems
    assert all(not re.search(r"\b(is|not|the|a)\b", problem) for _, _, problem in problems), problems


def test_a_roster_problem_without_a_known_wording_passes_through(app):
    with app.test_request_context():
        assert wording.roster_problem("something new went wrong") == "something new went wrong"
        assert wording.roster_problem("'12' is not a phone number") == "'12' 不是电话号码。"


def test_the_unreached_csv_says_what_was_tried_in_chinese(app):
    tried = {"channel": "sms", "status": "failed", "attempts": 3,
             "at": "2026-12-02T02:58:00+00:00", "error": "[30003] Unreachable"}
    with app.test_request_context():
        assert wording.delivery_try(tried) == "短信 失败 尝试 3 次 2026年12月2日 10:58 ([30003] Unreachable)"
    people = [{"name": "周杰", "phone": "+8613900000001", "area_code": VILLAGE_A,
               "section": "not_reached", "tried": [tried, {**tried, "channel": "voice",
                                                           "status": "queued", "error": None,
                                                           "attempts": 1, "at": None}]}]
    from gateway.delivery import reports
    with app.test_request_context():
        text = reports.unreached_csv(people, ["姓名", "电话", "地区代码", "分区", "已尝试"],
                                     describe_try=wording.delivery_try)
    row = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))[1]
    assert row[-1] == ("短信 失败 尝试 3 次 2026年12月2日 10:58 ([30003] Unreachable); "
                       "语音电话 排队 尝试 1 次")


def test_an_audit_detail_that_is_not_json_or_known_stays_as_written(app):
    with app.test_request_context():
        assert wording.audit_detail("发送前撤回") == "发送前撤回"
        assert wording.audit_detail("withdrawn before sending") == "发送前撤回"
        assert wording.audit_action("something_new") == "something_new"
        assert wording.audit_target("announcement:7") == "通知 7"
        assert wording.audit_detail('{"rows": 3, "area": null, "via": "api"}') == "行数: 3；途径: api"
        assert (wording.audit_detail('{"outcome": "not_home", "note": "赶集"}')
                == "结果: 不在家；备注: 赶集")
    assert tuple(wording.VISIT_OUTCOMES) == grids.OUTCOMES  # the buttons' words are the audit's


def recorded_in_code() -> tuple[set[str], set[str]]:
    """(actions, kinds of target) of every ``audit.record`` call in gateway/, as written in the
    source: a target ``f"grid:{code}"`` is of kind ``grid``, a plain ``"registrations"`` is a
    place; a target computed otherwise (a backup's folder name) has no kind."""
    actions, targets = set(), set()
    for where, call in audit_calls():
        action, target = call.args[2], call.args[3] if len(call.args) > 3 else None
        assert isinstance(action, ast.Constant), f"{where}: an action by name"
        actions.add(action.value)
        if isinstance(target, ast.Constant):
            targets.add(target.value)
        elif isinstance(target, ast.JoinedStr) and isinstance(target.values[0], ast.Constant):
            targets.add(target.values[0].value.partition(":")[0] + ":")
    return actions, targets


def audit_calls():
    """(where, call) of every ``audit.record(...)`` in gateway/."""
    for path in (ROOT / "gateway").rglob("*.py"):
        for call in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "record"
                    and getattr(call.func.value, "id", None) == "audit"):
                yield f"{path.relative_to(ROOT)}:{call.lineno}", call


def test_every_audit_action_and_target_in_the_code_has_a_chinese_wording(app):
    """So a new action cannot reach the audit page in English: each is worded, in Chinese."""
    actions, targets = recorded_in_code()
    assert {"approve", "nudge", "self_change", "speaker_languages"} <= actions  # the scan works
    with app.test_request_context():  # in Chinese, the console's default
        unworded = {action for action in actions
                    if not re.search(r"[\u4e00-\u9fff]", wording.audit_action(action))}
        unworded |= {target for target in targets
                     if not re.search(r"[\u4e00-\u9fff]", wording.audit_target(
                         target + "7" if target.endswith(":") else target))}
    assert not unworded


def detail_keys_in_code() -> dict[str, str]:
    """The keys of every detail written as a dict in an ``audit.record`` call of gateway/ (the
    fifth argument or ``detail=``), by where each is first written."""
    keys = {}
    for where, call in audit_calls():
        detail = call.args[4] if len(call.args) > 4 else next(
            (keyword.value for keyword in call.keywords if keyword.arg == "detail"), None)
        for key in detail.keys if isinstance(detail, ast.Dict) else ():
            if isinstance(key, ast.Constant):
                keys.setdefault(key.value, where)
    return keys


def retention_counts_in_code() -> set[str]:
    """The counts a retention run adds to its audit detail (``**result``): the keys of the
    result ``anonymise_one`` returns for a notice already done."""
    path = ROOT / "gateway" / "delivery" / "retention.py"
    function = next(node for node in ast.walk(ast.parse(path.read_text(), str(path)))
                    if isinstance(node, ast.FunctionDef) and node.name == "anonymise_one")
    return {key.value for node in ast.walk(function) if isinstance(node, ast.Return)
            and isinstance(node.value, ast.Dict) for key in node.value.keys}


def test_every_audit_detail_key_in_the_code_has_a_chinese_wording(app):
    """The audit page words each detail's key; one added in English only would show raw."""
    keys = detail_keys_in_code()
    assert {"rows", "outcome", "schema_from", "days"} <= set(keys)  # the scan works
    counts = retention_counts_in_code()
    assert {"deliveries", "grid_visits"} <= counts
    keys.update(dict.fromkeys(counts, "gateway/delivery/retention.py (anonymise_one)"))
    with app.test_request_context():  # in Chinese, the console's default
        unworded = {key: where for key, where in keys.items() if not re.search(
            r"[\u4e00-\u9fff]", wording.audit_detail(json.dumps({key: 1})).partition(":")[0])}
    assert not unworded


#: The modules whose sentences a roster or area import shows the officer.
ROSTER_MODULES = ("areas", "residents", "roster_cells", "roster_files", "roster_headers")
#: The calls that carry such a sentence, as their last argument.
PROBLEM_CALLS = {"_BadCell", "RowError", "AreaError", "add"}


def roster_problems_in_code() -> dict[str, str]:
    """Every roster problem ``audiences/`` can raise, as an example sentence (an ``{x!r}`` as
    ``'x7'``, any other ``{x}`` as ``7``), by where it is written; a name (``NOT_UTF8``) is
    looked up in its module. ``AreaError`` adds its prefix, ``area code '…'``."""
    import importlib

    found = {}
    for name in ROSTER_MODULES:
        module = importlib.import_module(f"audiences.{name}")
        path = ROOT / "audiences" / f"{name}.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            message = None
            if isinstance(node, ast.Call) and node.args and (
                    getattr(node.func, "id", None) or getattr(node.func, "attr", None)) in PROBLEM_CALLS:
                message = example(node.args[-1], module)
                if message and getattr(node.func, "id", None) == "AreaError":
                    message = f"area code 'x7' {message}"
            elif (isinstance(node, ast.Tuple) and len(node.elts) == 2  # (column, problem)
                  and isinstance(node.elts[0], ast.Constant) and isinstance(node.elts[0].value, str)
                  and " " not in node.elts[0].value):
                message = example(node.elts[1], module)
            if message and " " in message:
                found[f"{path.name}:{node.lineno}"] = message
    return found


def example(node: ast.AST, module) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(getattr(module, node.id, None), str):
        return getattr(module, node.id)
    if isinstance(node, ast.JoinedStr):
        return "".join(part.value if isinstance(part, ast.Constant)
                       else "'x7'" if part.conversion == ord("r") else "7" for part in node.values)
    return None


def test_every_roster_problem_in_the_code_has_a_chinese_wording(app):
    """So a new roster or area-code error cannot reach the import page in English."""
    problems = roster_problems_in_code()
    assert {"'x7' is not a year", "area code 'x7' has no province: it starts with 00",
            "grid 7 is in village 7, not in 7"} <= set(problems.values())  # the scan works
    with app.test_request_context():  # in Chinese, the console's default
        unworded = {where: problem for where, problem in problems.items()
                    if not re.search(r"[\u4e00-\u9fff]", wording.roster_problem(problem))
                    or re.search(r"\b(is|not|the|a|in)\b", wording.roster_problem(problem))}
    assert not unworded
