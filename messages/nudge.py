"""The SMS that asks a grid worker to visit the people a notice has not reached (#18, item 5)."""
from __future__ import annotations

from messages.phrases import wording_language
from messages.render_types import Rendered, RenderContext
from messages.sms import signature

_TEXT = {
    "zh": "网格员您好：通报“{headline}”在您的网格{grid}还有 {left} 人未收到，请上门告知：{link}",
    "en": "Grid worker: {left} people in your grid {grid} have not got the notice "
          "\"{headline}\". Please visit them: {link}",
}
#: For a withdrawal: its people were told the notice (some at the door) and not yet that
#: it is withdrawn.
_WITHDRAWAL_TEXT = {
    "zh": "网格员您好：通报“{headline}”已撤销，您的网格{grid}还有 {left} 人不知道，"
          "请上门告知已撤销：{link}",
    "en": "Grid worker: the notice \"{headline}\" is withdrawn, and {left} people in your "
          "grid {grid} do not know yet. Please tell them: {link}",
}


def nudge_sms(headline: str, grid: str, left: int, language: str,
              context: RenderContext, *, withdrawal: bool = False) -> Rendered:
    """The nudge in the worker's language, signed as the office's notices are, with the link
    to their list (``{PUBLIC_BASE_URL}/grid``); for a ``withdrawal``, that it is withdrawn."""
    words = (_WITHDRAWAL_TEXT if withdrawal else _TEXT)[wording_language(language)]
    link = f"{context.public_base_url.rstrip('/')}/grid"
    return Rendered("sms", language, signature(language, context) + words.format(
        headline=headline, grid=grid, left=left, link=link))
