"""The demo behind `./run demo`, shortened (fewer training steps and scored samples), end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole demo: sample, train, evaluate (~140 s on 2 busy cores)
def test_demo_samples_trains_evaluates_and_says_where(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "ditkit.demo", "--out", str(out), "--train-steps", "20",
                             "--eval-samples", "40"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for grid in ("bundled-grid", "shapes-grid", "text-grid", "trained-samples"):
        assert (out / grid / "grid.png").stat().st_size > 0
        assert json.loads((out / grid / "run.json").read_text())["ditkit_version"]
    shapes = json.loads((out / "shapes-grid" / "run.json").read_text())
    assert shapes["settings"]["checkpoint"].endswith("shapes-dit")
    text = json.loads((out / "text-grid" / "run.json").read_text())
    assert text["settings"]["checkpoint"].endswith("shapes-t2i") and len(text["settings"]["prompts"]) == 12
    report = json.loads((out / "bundled-eval" / "metrics.json").read_text())
    assert {"fid", "class_accuracy"} <= set(report["metrics"])
    assert (out / "train" / "loss_curve.png").is_file()
    steps = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line]
    assert max(r["step"] for r in steps if "loss" in r) == 20
    tail = result.stdout[result.stdout.index("== ditkit demo finished"):]
    for path in ("bundled-grid/grid.png", "shapes-grid/grid.png", "text-grid/grid.png", "loss_curve.png",
                 "metrics.jsonl"):
        assert path in tail  # the closing summary says where everything is


def test_run_script_rejects_unknown_commands():
    result = subprocess.run(["bash", str(REPO / "run"), "bogus"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: ./run demo | ./run test" in result.stderr
