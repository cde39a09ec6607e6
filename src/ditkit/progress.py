"""Progress bars that suit where they are written: a live tqdm bar on a terminal, sparse lines elsewhere.

A bar redrawn with carriage returns turns a log file or a pipe into one long line of fragments (a
300-step demo log was mostly bar pieces). When the stream is not a terminal, :func:`progress_bar`
returns a tqdm that prints a plain line at each tenth of the way (or, with no known total, at each
doubling of the count) and one at the end. Sampling and training both use it.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class PlainLines(tqdm):
    """tqdm that writes whole lines, few of them, and never a carriage return."""

    def __init__(self, *args, **kwargs):
        self._mark, self._printed = 0, 0
        kwargs.setdefault("mininterval", 0)  # every update reaches display(), which decides what to print
        super().__init__(*args, **kwargs)

    def _milestone(self) -> int:
        if self.total:
            return int(10 * self.n / self.total)
        return int(self.n).bit_length()

    def display(self, msg=None, pos=None):
        if msg is not None:  # tqdm asks to clear the bar: there is nothing to clear
            return False
        mark = self._milestone()
        if mark > self._mark:
            self._mark = mark
            self._line()
        return False

    def _line(self) -> None:
        self._printed = self.n
        self.fp.write(self.__str__() + "\n")
        self.fp.flush()

    def close(self):
        if not self.disable and self.n != self._printed:
            self._line()  # the final count, unless the last line already showed it
        self.leave = False  # tqdm would add a newline after the bar
        super().close()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def progress_bar(iterable=None, *, disable: bool = False, file=None, **kwargs):
    """A tqdm for ``iterable`` (same keywords): live on a terminal, :class:`PlainLines` otherwise."""
    stream = sys.stderr if file is None else file
    if disable or _is_terminal(stream):
        return tqdm(iterable, disable=disable, file=stream, **kwargs)
    return PlainLines(iterable, file=stream, **kwargs)
