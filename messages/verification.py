"""The SMS that carries a one-time code to a resident registering themselves (/join)."""
from __future__ import annotations

from messages.phrases import wording_language
from messages.render_types import Rendered, RenderContext
from messages.sms import signature

_TEXT = {
    "zh": "您的通报登记验证码是 {code}，{minutes} 分钟内有效。如非本人操作，请忽略本短信。",
    "en": "Your Tongbao registration code is {code}, valid for {minutes} minutes. "
          "If you did not ask for it, ignore this message.",
}


def code_sms(code: str, minutes: int, language: str, context: RenderContext) -> Rendered:
    """The code in the resident's language, signed as the office's notices are."""
    words = _TEXT[wording_language(language)]
    return Rendered("sms", language, signature(language, context) + words.format(code=code,
                                                                                minutes=minutes))
