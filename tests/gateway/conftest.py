"""A small county with residents chosen to exercise the policy, and API clients."""
from __future__ import annotations

import pytest
from sqlalchemy import insert

from audiences.residents import ResidentProfile
from gateway.store import accounts, roster
from gateway.store.schema import areas

DISTRICT = "450702"
TOWN = "450702100"
VILLAGE_A = "450702100201"
VILLAGE_B = "450702100202"
OTHER_DISTRICT_VILLAGE = "450703100201"

AREAS = [("450700", "钦州市"), (DISTRICT, "钦南区"), (TOWN, "沙埠镇"), (VILLAGE_A, "沙埠村"),
         (VILLAGE_B, "新屋村"), ("450703", "钦北区"), ("450703100", "大寺镇"),
         (OTHER_DISTRICT_VILLAGE, "大寺村")]


def person(name, area=VILLAGE_A, *, phone=None, openid=None, born=1990, visual=False,
           hearing=False, smartphone=True, opt_out=(), test=False, language="zh"):
    return ResidentProfile(name=name, phone=phone, wechat_openid=openid, area_code=area,
                           birth_year=born, visually_impaired=visual, hearing_impaired=hearing,
                           has_smartphone=smartphone, language=language,
                           opt_out=frozenset(opt_out), test_audience=test)


# name -> (profile, the channels the default policy gives them at moderate severity)
RESIDENTS = {
    "young follower": (person("王小明", phone="+8613800000011", openid="o_young1"), {"wechat"}),
    "young sms only": (person("李娜", phone="+8613800000012"), {"sms"}),
    "blind": (person("张伟", phone="+8613800000013", visual=True, born=1970), {"voice", "sms"}),
    "deaf": (person("刘芳", phone="+8613800000014", openid="o_deaf1", hearing=True),
             {"sms", "wechat"}),
    "elderly": (person("陈桂英", VILLAGE_B, phone="+8613800000015", born=1948, smartphone=False),
                {"voice", "sms"}),
    "opted out of wechat": (person("杨洋", VILLAGE_B, phone="+8613800000016", openid="o_opt1",
                                   opt_out={"wechat"}), {"sms"}),
    "drill tester": (person("赵磊", phone="+8613800000017", openid="o_test1", test=True),
                     {"wechat"}),
    "other district": (person("黄敏", OTHER_DISTRICT_VILLAGE, phone="+8613800000018"), {"sms"}),
}
SPEAKERS = [("spk-a", VILLAGE_A, False), ("spk-b", VILLAGE_B, True),
            ("spk-other", OTHER_DISTRICT_VILLAGE, False)]


@pytest.fixture
def county(app):
    """Areas, residents, loudspeakers and users: author, approver, admin, with API tokens."""
    tokens = {}
    with app.extensions["engine"].begin() as conn:
        conn.execute(insert(areas), [{"code": c, "name": n} for c, n in AREAS])
        roster.insert_residents(conn, [profile for profile, _ in RESIDENTS.values()])
        for device_id, area, is_test in SPEAKERS:
            roster.add_device(conn, device_id, area, test_device=is_test)
        for name in ("author", "approver", "admin", "author2"):
            accounts.create_user(conn, name, name.rstrip("2"), f"{name}-password")
            tokens[name] = accounts.create_token(conn, name)
    return tokens


@pytest.fixture
def api(app, county):
    """``api(user).post(path, json=...)``: a test client speaking as that user."""
    client = app.test_client()

    class As:
        def __init__(self, user):
            self.headers = {"Authorization": f"Bearer {county[user]}"}

        def get(self, path, **kwargs):
            return client.get(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

        def post(self, path, **kwargs):
            return client.post(path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    return As


def announcement(**overrides):
    data = {"headline": "暴雨红色预警", "body": "预计未来3小时有特大暴雨。", "instruction": "请转移到安全地带。",
            "severity": "moderate", "areas": [DISTRICT]}
    data.update(overrides)
    return data
