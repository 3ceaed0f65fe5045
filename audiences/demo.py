"""A deterministic demo county: four districts of Qinzhou (钦州市, 450700).

The province, prefecture, district and town names and the district codes are
real; the town and village codes, the village names and every resident are
synthetic. Town codes follow the national pattern (``1xx`` for a town) and
village codes the one for village committees (``2xx``), so they look right
without claiming to be the official ones.

The resident mix follows rural southern China: about a quarter aged 65 or
over, impairments and the lack of a smartphone rising with age, a WeChat
openid for most smartphone owners, a mainland mobile number for nearly all.
Residents come from a seeded ``random.Random`` one at a time, so a county of
a million costs no more memory than one of three thousand.

Every village is divided into two grids (网格, ``一组`` and ``二组``: the village's code and
``001``/``002``), residents taking turns between them; the first village's grids have a
grid worker, the demo login ``grid`` (docs/grid-workers.md).
"""
from __future__ import annotations

import base64
import bisect
import datetime
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from audiences.residents import ResidentProfile

DEMO_SEED = 450700
DEMO_RESIDENTS = 3000
DEFAULT_RESIDENTS_PER_VILLAGE = 1000

PROVINCE = ("450000", "广西壮族自治区")
PREFECTURE = ("450700", "钦州市")

# district (code, name) → towns, each (name, villages)
_DISTRICTS: dict[tuple[str, str], tuple[tuple[str, tuple[str, ...]], ...]] = {
    ("450702", "钦南区"): (
        ("沙埠镇", ("沙埠村", "新村村", "马鞍村", "南坡村")),
        ("康熙岭镇", ("康熙岭村", "长墩村", "坪底村")),
        ("犀牛脚镇", ("犀牛脚村", "大环村", "乌雷村", "沙角村")),
    ),
    ("450703", "钦北区"): (
        ("大寺镇", ("大寺村", "那香村", "马岗村")),
        ("小董镇", ("小董村", "那学村", "六坡村", "茶山村")),
        ("那蒙镇", ("那蒙村", "坡塘村", "六安村")),
    ),
    ("450721", "灵山县"): (
        ("檀圩镇", ("檀圩村", "那马村", "大塘村", "新华村")),
        ("陆屋镇", ("陆屋村", "榕木村", "六坤村")),
        ("武利镇", ("武利村", "汉塘村", "牛岭村")),
    ),
    ("450722", "浦北县"): (
        ("张黄镇", ("张黄村", "旺岭村", "大垌村", "江口村")),
        ("寨圩镇", ("寨圩村", "大平村", "石埇村")),
        ("福旺镇", ("福旺村", "塘头村", "坡心村")),
    ),
}
_FIRST_TOWN_NUMBER = 101
_FIRST_VILLAGE_NUMBER = 201
_LAST_VILLAGE_NUMBER = 999
# The first village of these districts has a test loudspeaker, for drills.
_TEST_DEVICE_DISTRICTS = ("450702", "450722")

# Name pieces for the villages a large synthetic county adds.
_VILLAGE_NAME_FIRST = "大小新上下东西南北石龙那六坡岭塘"
_VILLAGE_NAME_SECOND = "塘坡岭垌湾江头屋田山埠寨圩根洞口"
_NUMERALS = "一二三四五六七八九"

# Weighted towards the surnames common in Guangxi (黄, 韦, 覃, 莫, 梁 …).
_SURNAMES = "黄黄黄李李陈陈梁梁刘张林王韦韦杨莫覃覃罗周苏吴何钟冯劳庞宁谢潘蒙"
_GIVEN_MALE = "伟强军国华明建志海文勇永德新春金荣才松家俊浩宇杰涛"
_GIVEN_FEMALE = "芳丽秀英梅兰玲红霞燕琴桂凤珍娟婷雪静敏艳"
_ENGLISH_NAMES = ("Emily Carter", "James Walker", "Nguyen Van An", "Sophie Martin", "Daniel Brooks")
_MOBILE_PREFIXES = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "157",
                    "158", "159", "182", "183", "186", "187", "188", "177", "180", "189")
# Multiplying the resident's index by a number coprime to 10**8 gives every
# resident a different 8-digit tail without remembering which were used.
_PHONE_TAIL_STEP = 61_803_399
_PHONE_TAILS = 10**8


@dataclass(frozen=True)
class _AgeBand:
    youngest: int
    oldest: int
    share: float
    visually_impaired: float
    hearing_impaired: float
    smartphone: float


# Adults on a rural roster: 65+ is 23 %; overall ≈1.9 % visually and ≈2.8 %
# hearing impaired; nearly everyone under 45 has a smartphone, few over 75.
_AGE_BANDS = (
    _AgeBand(18, 29, 0.15, 0.005, 0.005, 0.97),
    _AgeBand(30, 44, 0.22, 0.007, 0.008, 0.95),
    _AgeBand(45, 59, 0.28, 0.012, 0.015, 0.85),
    _AgeBand(60, 64, 0.12, 0.020, 0.030, 0.65),
    _AgeBand(65, 74, 0.14, 0.035, 0.050, 0.40),
    _AgeBand(75, 84, 0.07, 0.060, 0.100, 0.15),
    _AgeBand(85, 99, 0.02, 0.100, 0.180, 0.05),
)
_AGE_BAND_LIMITS = list(itertools.accumulate(band.share for band in _AGE_BANDS))

_OPENID_IF_SMARTPHONE = 0.88
_NO_PHONE_IF_OPENID = 0.012
_ENGLISH = 0.003
_OPT_OUT = 0.02
_OPT_OUT_CHOICES = ("voice", "voice", "wechat", "sms")
_TEST_AUDIENCE = 0.01
#: Each village's grids, by suffix and name; residents take turns between them.
_GRIDS = (("001", "一组"), ("002", "二组"))
#: The demo grid worker and the village whose grids they work (the county's first).
DEMO_GRID_WORKER = "grid"


@dataclass(frozen=True)
class DemoCounty:
    """Areas, loudspeakers and a reproducible stream of residents.

    ``areas`` is ``[(code, name)]`` from the province down, ``devices``
    ``[(device_id, village_code, is_test)]``; ``residents()`` starts the
    same stream of ``resident_count`` profiles every time it is called.
    """

    areas: tuple[tuple[str, str], ...]
    devices: tuple[tuple[str, str, bool], ...]
    village_codes: tuple[str, ...]
    resident_count: int
    seed: int

    def residents(self) -> Iterator[ResidentProfile]:
        return _residents(self.village_codes, self.resident_count, self.seed)

    @property
    def grids(self) -> list[tuple[str, str]]:
        """``[(grid_code, name)]``: each village's grids."""
        return [(code + suffix, name) for code in self.village_codes for suffix, name in _GRIDS]


def demo_areas() -> list[tuple[str, str]]:
    """Province, prefecture, districts, towns and villages of the demo county."""
    return list(synthetic_county(DEMO_RESIDENTS).areas)


def demo_devices() -> list[tuple[str, str, bool]]:
    """One loudspeaker per demo village, ``(device_id, village_code, is_test)``."""
    return list(synthetic_county(DEMO_RESIDENTS).devices)


def demo_residents(n: int = DEMO_RESIDENTS, seed: int = DEMO_SEED) -> Iterator[ResidentProfile]:
    """``n`` residents spread over the demo villages, the same for the same seed."""
    return _residents(synthetic_county(DEMO_RESIDENTS).village_codes, n, seed)


def demo_grids() -> list[tuple[str, str]]:
    """The demo county's grids, ``(grid_code, name)``: two per village."""
    return synthetic_county(DEMO_RESIDENTS).grids


def demo_grid_assignments() -> list[tuple[str, str]]:
    """``(grid_code, user)``: the demo grid worker works both grids of the first village."""
    first_village = synthetic_county(DEMO_RESIDENTS).village_codes[0]
    return [(first_village + suffix, DEMO_GRID_WORKER) for suffix, _ in _GRIDS]


def demo_users() -> list[tuple[str, str, str]]:
    """Demo logins ``(name, role, password)``; printed by the quickstart."""
    return [
        ("author", "author", "tongbao-author"),
        ("approver", "approver", "tongbao-approver"),
        ("admin", "admin", "tongbao-admin"),
        (DEMO_GRID_WORKER, "grid_worker", "tongbao-grid"),
    ]


def synthetic_county(n: int, *, residents_per_village: int = DEFAULT_RESIDENTS_PER_VILLAGE,
                     seed: int = DEMO_SEED) -> DemoCounty:
    """A county of ``n`` residents with about ``residents_per_village`` per village.

    Up to the demo's own villages it is the demo county; beyond, numbered
    villages are added round-robin to the demo towns (each town holds at most
    799 villages, codes 201–999), each with its loudspeaker.
    """
    if n < 0 or residents_per_village < 1:
        raise ValueError("need n >= 0 and residents_per_village >= 1")
    towns = _towns()
    named = sum(len(villages) for _, _, villages in towns)
    wanted = max(named, math.ceil(n / residents_per_village))
    capacity = len(towns) * (_LAST_VILLAGE_NUMBER - _FIRST_VILLAGE_NUMBER + 1)
    if wanted > capacity:
        raise ValueError(f"{wanted} villages do not fit in {len(towns)} towns; raise residents_per_village")
    villages_by_town = _add_villages(towns, wanted - named)
    areas = [PROVINCE, PREFECTURE, *_DISTRICTS]
    for (town_code, town_name, _), villages in zip(towns, villages_by_town):
        areas.append((town_code, town_name))
        areas.extend(villages)
    village_codes = tuple(code for villages in villages_by_town for code, _ in villages)
    return DemoCounty(tuple(areas), _devices(village_codes), village_codes, n, seed)


def _towns() -> list[tuple[str, str, tuple[str, ...]]]:
    """``(town_code, town_name, village_names)`` for every demo town."""
    return [
        (f"{district_code}{_FIRST_TOWN_NUMBER + index:03d}", town_name, village_names)
        for (district_code, _), towns in _DISTRICTS.items()
        for index, (town_name, village_names) in enumerate(towns)
    ]


def _add_villages(towns: list[tuple[str, str, tuple[str, ...]]],
                  extra: int) -> list[list[tuple[str, str]]]:
    """Each town's villages: its named ones, then its share of ``extra`` numbered ones."""
    villages_by_town = []
    for position, (town_code, _, names) in enumerate(towns):
        share = extra // len(towns) + (1 if position < extra % len(towns) else 0)
        all_names = [*names, *(_generated_village_name(index) for index in range(share))]
        villages_by_town.append([(f"{town_code}{_FIRST_VILLAGE_NUMBER + number:03d}", name)
                                 for number, name in enumerate(all_names)])
    return villages_by_town


def _generated_village_name(index: int) -> str:
    """大塘村, 小塘村 … and, once the pairs run out, 大塘二村 …"""
    pairs = len(_VILLAGE_NAME_FIRST) * len(_VILLAGE_NAME_SECOND)
    first = _VILLAGE_NAME_FIRST[index % len(_VILLAGE_NAME_FIRST)]
    second = _VILLAGE_NAME_SECOND[index // len(_VILLAGE_NAME_FIRST) % len(_VILLAGE_NAME_SECOND)]
    numeral = _NUMERALS[index // pairs] if index >= pairs else ""
    return f"{first}{second}{numeral}村"


def _devices(village_codes: tuple[str, ...]) -> tuple[tuple[str, str, bool], ...]:
    test_villages = {next(code for code in village_codes if code.startswith(district))
                     for district in _TEST_DEVICE_DISTRICTS}
    return tuple((f"spk-{code}", code, code in test_villages) for code in village_codes)


def _residents(village_codes: tuple[str, ...], n: int, seed: int) -> Iterator[ResidentProfile]:
    rng = random.Random(seed)
    this_year = datetime.date.today().year
    phone_tail_offset = rng.randrange(_PHONE_TAILS)
    for index in range(n):
        band = _AGE_BANDS[min(bisect.bisect(_AGE_BAND_LIMITS, rng.random()), len(_AGE_BANDS) - 1)]
        has_smartphone = rng.random() < band.smartphone
        openid = _openid(rng) if has_smartphone and rng.random() < _OPENID_IF_SMARTPHONE else None
        has_phone = openid is None or rng.random() >= _NO_PHONE_IF_OPENID
        tail = (index * _PHONE_TAIL_STEP + phone_tail_offset) % _PHONE_TAILS
        english = rng.random() < _ENGLISH
        village = rng.choice(village_codes)
        yield ResidentProfile(
            name=rng.choice(_ENGLISH_NAMES) if english else _chinese_name(rng),
            phone=f"+86{rng.choice(_MOBILE_PREFIXES)}{tail:08d}" if has_phone else None,
            wechat_openid=openid,
            area_code=village,
            birth_year=this_year - rng.randint(band.youngest, band.oldest),
            visually_impaired=rng.random() < band.visually_impaired,
            hearing_impaired=rng.random() < band.hearing_impaired,
            has_smartphone=has_smartphone,
            language="en" if english else "zh",
            opt_out=frozenset({rng.choice(_OPT_OUT_CHOICES)}) if rng.random() < _OPT_OUT else frozenset(),
            test_audience=rng.random() < _TEST_AUDIENCE,
            grid=village + _GRIDS[index % len(_GRIDS)][0],  # no draw: the stream stays as it was
        )


def _chinese_name(rng: random.Random) -> str:
    given = _GIVEN_MALE if rng.random() < 0.5 else _GIVEN_FEMALE
    length = 2 if rng.random() < 0.6 else 1
    return rng.choice(_SURNAMES) + "".join(rng.choice(given) for _ in range(length))


def _openid(rng: random.Random) -> str:
    # Real openids are "o" and 27 URL-safe base64 characters; 21 random bytes give 28.
    return "o" + base64.urlsafe_b64encode(rng.randbytes(21)).decode("ascii")[:27]
