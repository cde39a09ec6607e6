"""ditkit.progress: a live bar on a terminal, sparse whole lines in a log file or a pipe."""

import io

from tqdm.auto import tqdm

from ditkit.progress import PlainLines, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_a_pipe_gets_one_line_per_tenth_and_no_carriage_returns():
    stream = io.StringIO()
    for _ in progress_bar(range(300), file=stream, desc="sampling", unit="step"):
        pass
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("sampling: 100%") and "300/300" in lines[-1]
    assert [line.split("%")[0].split()[-1] for line in lines] == [str(p) for p in range(10, 101, 10)]


def test_manual_updates_unknown_totals_and_an_early_close():
    stream = io.StringIO()
    bar = progress_bar(total=None, file=stream, desc="train")
    for _ in range(9):
        bar.update(1)
    bar.set_postfix(loss=0.5)  # what training does between updates
    bar.close()
    counts = [line.split()[1] for line in stream.getvalue().splitlines()]
    assert counts == ["1it", "2it", "4it", "8it", "9it"]  # at each doubling, then the final count
    stream = io.StringIO()
    bar = progress_bar(total=40, file=stream, leave=False)
    bar.update(6)
    bar.close()  # stopped early: the count reached, once
    assert stream.getvalue().count("\n") == 1 and "6/40" in stream.getvalue() and "\r" not in stream.getvalue()


def test_a_terminal_gets_the_live_bar_and_disable_prints_nothing():
    terminal = FakeTerminal()
    bar = progress_bar(range(3), file=terminal)
    assert type(bar) is tqdm and not isinstance(bar, PlainLines)
    list(bar)
    assert "\r" in terminal.getvalue()
    quiet = io.StringIO()
    list(progress_bar(range(3), file=quiet, disable=True))
    assert quiet.getvalue() == ""
