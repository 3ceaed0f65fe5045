"""Which roster column a header names: the field names and their common Chinese names.

One table (``HEADER_NAMES``) for every reader of rosters; the README lists it.
Headers are compared without letter case, spaces or underscores, so
``Area Code``, ``area_code`` and ``AREA CODE`` are the same column, as are
``微信 OpenID`` and ``微信openid``.
"""
from __future__ import annotations

#: field → the headers that name it (the field's own name first).
HEADER_NAMES: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名", "名字"),
    "phone": ("phone", "手机号", "手机", "手机号码", "电话", "电话号码", "联系电话"),
    "wechat_openid": ("wechat_openid", "微信openid", "openid"),
    "area_code": ("area_code", "地区代码", "行政区划代码", "区划代码", "村代码", "村/社区代码", "社区代码"),
    "birth_year": ("birth_year", "出生年份", "出生年"),
    "visually_impaired": ("visually_impaired", "视力障碍", "视障"),
    "hearing_impaired": ("hearing_impaired", "听力障碍", "听障"),
    "has_smartphone": ("has_smartphone", "有智能手机", "智能手机"),
    "language": ("language", "语言", "书面语言"),
    "spoken_language": ("spoken_language", "口语", "方言", "说的语言", "口语语言"),
    "opt_out": ("opt_out", "退订"),
    "test_audience": ("test_audience", "测试对象"),
    "grid": ("grid", "网格", "网格编码", "网格代码"),
}
#: The Chinese header of each field, as the console's Chinese template writes it.
CHINESE_HEADERS: dict[str, str] = {field: names[1] for field, names in HEADER_NAMES.items()}


def header_key(label: str) -> str:
    """A header as compared: no letter case, spaces, underscores or byte order mark."""
    return "".join(label.replace("\ufeff", "").replace("_", "").split()).casefold()


_FIELD_OF = {header_key(name): field for field, names in HEADER_NAMES.items() for name in names}


def field_for(label: str) -> str | None:
    """The roster field a header names, or ``None`` for a column the roster does not use."""
    return _FIELD_OF.get(header_key(label))
