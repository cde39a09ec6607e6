"""Progress bars that suit where they are written: a live tqdm bar on a terminal, sparse lines elsewhere.

A bar redrawn with carriage returns turns a log file or a pipe into one long line of fragments (a
300-step demo log was mostly bar pieces). When the stream is not a terminal, :func:`progress_bar`
returns a tqdm that prints a plain line at each tenth of the way (or, with no known total, at each
doubling of the count) and one at the end. Sampling and training both use it.

Samplers draw no bar: they call a ``callback(**step)`` once per step (``ditkit.diffusion.samplers``), and the
caller turns that into progress — :func:`bar_callback` (a bar), :class:`CallCounter` (``report(done, total)``,
the app's), :func:`chain_callbacks` (several at once).
"""

from __future__ import annotations

import sys
from typing import Callable

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


def bar_callback(bar) -> Callable:
    """A callback (any keywords) that advances ``bar`` by one per call: a sampler's steps on a progress bar."""
    return lambda **_: bar.update(1)


class CallCounter:
    """A callback (any keywords) that counts its calls and, after each, calls ``report(done, total)`` with
    ``done`` capped at ``total``: progress shown by someone else (the app's per-step report)."""

    def __init__(self, total: int, report: Callable[[int, int], None] | None = None):
        self.total, self.report, self.done = max(1, int(total)), report, 0

    def __call__(self, **_) -> None:
        self.done += 1
        if self.report is not None:
            self.report(min(self.done, self.total), self.total)


def chain_callbacks(*callbacks: Callable | None) -> Callable | None:
    """One callback calling each given one in turn with the same keywords (None ones left out; None if none)."""
    live = [c for c in callbacks if c is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def each(**info) -> None:
        for callback in live:
            callback(**info)

    return each
