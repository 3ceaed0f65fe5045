"""messages/graphemes.py: user-perceived characters, as UAX #29 cuts them (lengths in code
points, by hand)."""
import pytest

from messages.graphemes import graphemes


@pytest.mark.parametrize("text, lengths", [
    ("", []),
    ("中文ab", [1, 1, 1, 1]),
    ("👨\u200d👩\u200d👧\u200d👦x", [7, 1]),           # ZWJ family, then a letter
    ("🇨🇳🇺🇸🇯", [2, 2, 1]),                            # flags pair up; a lone indicator is alone
    ("1\ufe0f\u20e3#\ufe0f\u20e3", [3, 3]),              # keycaps
    ("👍🏽👍", [2, 1]),                                   # a skin tone joins its hand
    ("👩🏽\u200d🚒", [4]),                                # skin tone inside a ZWJ sequence
    ("❤\ufe0f\u200d🔥", [4]),                             # U+2764 is pictographic too
    ("🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007fa", [7, 1]),  # tag flag
    ("e\u0301!", [2, 1]),                                 # a combining accent joins its letter
    ("a\r\nb", [1, 2, 1]),                                # CR LF is one
    ("a\u200db", [2, 1]),                                 # a ZWJ between letters joins nothing
    ("👨\u200d🇨🇳", [2, 2]),                              # nor between a person and a flag
    ("\u0301a", [1, 1]),                                  # a mark with nothing before is alone
])
def test_graphemes(text, lengths):
    clusters = graphemes(text)
    assert [len(cluster) for cluster in clusters] == lengths
    assert "".join(clusters) == text
