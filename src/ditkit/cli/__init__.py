"""The ``ditkit`` command line: a thin layer that parses arguments and calls the library.

Each subcommand lives in its own module here with two functions:
``add_parser(subparsers)`` registers its flags (and sets ``func``), ``run(args)`` does the work by
calling the library (``uni`` over ``pipelines.unidiffuser``, ``t2i_eval`` over ``evaluation.text_to_image``,
``uni_eval`` over ``evaluation.unidiffuser_eval``, ...). ``sampling`` is no subcommand: it builds the sampling
flags of ``sample``, ``uni``, ``t2i-eval`` and ``uni-eval`` from ``pipelines.SamplingConfig``. User errors
(``DitkitError``) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from ..errors import DitkitError
from ..version import __version__

# OSErrors that name a problem with the user's disk or paths, not a bug: one line like a DitkitError.
_PLACE_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EISDIR, errno.ENOTDIR}

# Order is the order shown by ``ditkit --help``.
_COMMANDS = ("sample", "train", "eval", "flops", "info", "export", "app", "study", "t2i-eval", "uni", "uni-eval")


class _Parser(argparse.ArgumentParser):
    """argparse prints the usage block on errors; we want one clear line."""

    def error(self, message):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ditkit",
        description="Diffusion Transformers: train, sample, evaluate and count Gflops.",
    )
    parser.add_argument("--version", action="version", version=f"ditkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMANDS:
        importlib.import_module(f"{__name__}.{name.replace('-', '_')}").add_parser(sub)  # uni-eval → uni_eval
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except DitkitError as exc:
        print(f"ditkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ditkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # the disk, not ditkit: a read-only or full place found late is still one line
        if exc.errno not in _PLACE_ERRORS:
            raise
        where = f" {exc.filename}" if exc.filename else ""
        print(f"ditkit {args.command}: error: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
