"""Text that arrives in pieces (``synthesize-chunk``), cut into sentences as each one completes. Pure.

A sentence is complete once its end mark (. ! ? … or a CJK full stop) is followed by white space, or
for CJK marks by anything: until then the next chunk may still continue it ("3." + "5 km",
"Dr." + " Smith"). What is left at ``synthesize-stop`` is the last sentence. The router cuts long
text again, so this only decides when speech may begin, never how the engine phrases it.
"""

from __future__ import annotations

import re

# an end mark, then closing quotes or brackets, then the white space that proves the sentence ended
_END = re.compile(r"""[.!?…]+["'”’)\]]*(?=\s)|[。！？]+["'”’）」』]*""")
# words ending in "." that do not end a sentence
_NOT_AN_END = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "approx"}
)


def _is_abbreviation(head: str) -> bool:
    """``head`` (text up to a full stop) ends in an abbreviation or a single letter ("J.")."""
    words = head.rstrip(".").split()
    if not words:
        return False
    last = words[-1].lower()
    return last in _NOT_AN_END or (len(last) == 1 and last.isalpha())


class SentenceStream:
    """``add(chunk)`` returns the sentences that chunk completed; ``finish()`` the rest (maybe '')."""

    def __init__(self, min_chars: int = 12) -> None:
        # a "sentence" shorter than this ("Hi.") waits to be spoken with the next one
        self.min_chars = min_chars
        self._buffer = ""

    def add(self, chunk: str) -> list[str]:
        self._buffer += chunk
        out: list[str] = []
        start = 0
        for match in _END.finditer(self._buffer):
            end = match.end()
            head = self._buffer[start:end]
            if match.group().startswith(".") and _is_abbreviation(head):
                continue
            if len(head.strip()) < self.min_chars:
                continue
            out.append(" ".join(head.split()))
            start = end
        self._buffer = self._buffer[start:]
        return out

    def finish(self) -> str:
        rest, self._buffer = " ".join(self._buffer.split()), ""
        return rest
