"""Token ids → text deltas, with stop strings: the only place generation meets the tokenizer's decoding.

Guarantees: the concatenated deltas equal `decode(tokens)` up to (excluding) the first stop string;
a delta never ends inside a multi-byte character (a trailing U+FFFD from a partial UTF-8 sequence is held
back) and never contains the start of a stop string that might still complete (held back until decided).
"""

from __future__ import annotations

from typing import Callable

REPLACEMENT = "\ufffd"


class TextStream:
    """`decode(tokens) -> str` is the tokenizer's decoding (special tokens skipped)."""

    def __init__(self, decode: Callable[[list[int]], str], stop: list[str] | None = None):
        self.decode = decode
        self.stop = [s for s in (stop or []) if s]
        self.tokens: list[int] = []
        self.emitted = 0  # characters of the decoded text already handed out
        self.stopped = False  # a stop string was found: generation should end
        self._text = ""

    def push(self, token: int) -> str:
        """Add one token; return the text that is now final (possibly "")."""
        if self.stopped:
            return ""
        self.tokens.append(token)
        text = self.decode(self.tokens)
        if text.endswith(REPLACEMENT):  # an incomplete UTF-8 sequence: wait for the rest of the character
            return ""
        self._text = text
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._emit(cut)
        return self._emit(len(text) - self._held_back(text))

    def finish(self) -> str:
        """Generation ended: release what was held back (stop-string prefixes that never completed)."""
        if self.stopped:
            return ""
        text = self.decode(self.tokens)
        self._text = text
        return self._emit(len(text))

    def _emit(self, end: int) -> str:
        delta = self._text[self.emitted:end] if end > self.emitted else ""
        self.emitted = max(self.emitted, end)
        return delta

    def _first_stop(self) -> int | None:
        # a stop string may straddle the emitted boundary only by what was held back, so search from there
        start = max(0, self.emitted - max((len(s) for s in self.stop), default=0))
        hits = [i for i in (self._text.find(s, start) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _held_back(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self.stop:
            for n in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:n]):
                    longest = n
                    break
        return longest
