"""The command line explains itself: every flag has help text; bad flags and values give one clear line."""

import argparse
import subprocess
import sys

import pytest

from ditkit.cli import _COMMANDS, build_parser


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_subcommand_is_registered_and_every_flag_has_help():
    subs = _subparsers(build_parser())
    assert set(subs) == set(_COMMANDS)
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}"
               for name, sub in subs.items() for a in sub._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not missing, f"flags without help text: {missing}"
    for name, sub in subs.items():
        assert (sub.description or "").strip(), f"'ditkit {name}' has no description"


@pytest.mark.parametrize("command", [[], *[[c] for c in _COMMANDS]])
def test_help_runs(command):
    result = subprocess.run([sys.executable, "-m", "ditkit", *command, "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "usage: ditkit" in result.stdout


@pytest.mark.parametrize("args, fragment", [
    (["sample", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["sample", "--steps", "many"], "invalid int value"),
    (["sample", "--sampler", "eulerr"], "invalid choice"),
    (["flops", "--block", "mode3"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_flags_and_values_give_one_line(args, fragment):
    result = subprocess.run([sys.executable, "-m", "ditkit", *args], capture_output=True, text=True)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [["sample"], ["t2i-eval", "--checkpoint", "x"], ["uni", "t2i"]])
def test_guidance_is_spelled_cfg_scale_everywhere_with_scale_as_alias(command):
    from ditkit.cli import build_parser

    parser = build_parser()
    given = [parser.parse_args([*command, flag, "2.5"]) for flag in ("--cfg-scale", "--scale")]
    values = [vars(ns).get("cfg_scale", vars(ns).get("scale")) for ns in given]
    assert values == [2.5, 2.5]
