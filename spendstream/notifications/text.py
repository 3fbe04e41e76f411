"""Text that came from events or config, made inert in a notification's Markdown body."""

from __future__ import annotations

import re

# Characters no channel may read as markup in text that came from events or config:
# Slack control sequences (<!here>, <@U1>, <url|label>) and HTML tags lose their brackets,
# code spans lose their backticks, line breaks cannot start Markdown blocks.
_LOOKALIKES = str.maketrans({"<": "‹", ">": "›", "`": "ˋ", "\r": " ", "\n": " "})
_MARKDOWN_SPECIALS = re.compile(r"([\\*_~\[\]()#|!])")
ZERO_WIDTH_SPACE = "\u200b"


def inert(text: str) -> str:
    """``text`` (a tag value, budget name, owner, scope) made inert in the Markdown alert body
    on every channel: no link, mention, emphasis, code span or HTML tag survives.

    Markdown punctuation is backslash-escaped; ``<``, ``>`` and backticks become look-alikes
    (‹ › ˋ); a zero-width space follows every ``@`` (no ``@channel``/``@everyone`` ping) and
    splits every ``://`` (no auto-linked URL). What a reader sees stays recognisable.
    """
    text = _MARKDOWN_SPECIALS.sub(r"\\\1", text.translate(_LOOKALIKES))
    return text.replace("@", "@" + ZERO_WIDTH_SPACE).replace("://", ":" + ZERO_WIDTH_SPACE + "//")
