"""The study report on a hand-made study folder: table columns, training compute, Spearman, block ranking."""

import csv
import json
import subprocess
import sys

import pytest

from ditkit.study import parse_spec, spearman, write_report
from ditkit.study.runner import prepare
from ditkit.study.status import record_eval, write_status

SPEC = {"study": {"data": "mnist"}, "train": {"global_batch_size": 4}, "budget": {"steps": 20},
        "eval": {"every": 10, "samples": 8},
        "sizes": {"T": {"hidden_size": 32, "depth": 1, "num_heads": 2},
                  "U": {"hidden_size": 64, "depth": 2, "num_heads": 2}},
        "grid": [{"sizes": ["T", "U"], "patch_sizes": [8, 4]},
                 {"sizes": ["T"], "patch_sizes": [8], "blocks": ["adaln-zero", "adaln", "in-context"]}]}


@pytest.fixture
def study(tmp_path):
    """A study folder whose FIDs fall as Gflops rise, with one diverged and one unfinished cell."""
    spec = parse_spec(SPEC)
    out = tmp_path / "study"
    folders = dict(zip([c.name for c in spec.cells], prepare(spec, str(out))))
    ranked = sorted(spec.cells[:4], key=lambda c: c.gflops)
    for rank, cell in enumerate(ranked):
        for step in (10, 20):
            record_eval(folders[cell.name], step, {"fid": 100.0 - 10 * rank - step})
        write_status(folders[cell.name], state="done", step=20, wall_s=5.0)
    record_eval(folders["T-p8-adaln"], 10, {"fid": 95.0})
    write_status(folders["T-p8-adaln"], state="diverged", reason="the loss became nan by step 12")
    record_eval(folders["T-p8-in-context"], 10, {"fid": 90.0})
    write_status(folders["T-p8-in-context"], state="running")
    return spec, out


def test_report_table_statistics_and_plots(study):
    spec, out = study
    result = write_report(str(out))
    rows = {r["cell"]: r for r in csv.DictReader(open(out / "report" / "results.csv"))}
    assert set(rows) == {c.name for c in spec.cells}
    done = rows["U-p4-adaln-zero"]
    assert done["status"] == "done" and done["images_seen"] == "80" and float(done["final_fid"]) == float(done["fid@20"])
    assert float(done["train_compute_gflops"]) == pytest.approx(float(done["gflops"]) * 3 * 80, rel=1e-4)
    assert rows["T-p8-adaln"]["final_fid"] == "" and "loss became nan" in rows["T-p8-adaln"]["reason"]
    assert rows["T-p8-in-context"]["status"] == "running" and rows["T-p8-in-context"]["fid@10"] == "90.000"
    rho, p, n = result["spearman"]
    assert rho == pytest.approx(-1.0) and n == 4  # FID falls monotonically with Gflops in this folder
    markdown = (out / "report" / "results.md").read_text()
    assert "ρ = -1.000" in markdown
    # only finished cells have a final FID, so the diverged and unfinished designs rank last
    assert "best first by final FID: adaln-zero (" in markdown and "< adaln (diverged) < in-context (running)" in markdown
    assert result["plots"] == ["fid_vs_steps.png", "fid_vs_gflops.png", "fid_vs_compute.png", "blocks.png"]
    for name in result["plots"]:
        png = (out / "report" / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) < 100_000  # small enough to commit


def test_spearman_needs_three_finished_cells():
    rows = [{"gflops": g, "final_fid": f} for g, f in [(1, 3.0), (2, None), (3, 1.0)]]
    assert spearman(rows) is None
    rows.append({"gflops": 4, "final_fid": 2.0})
    rho, _, n = spearman(rows)
    assert n == 3 and rho == pytest.approx(-0.5)


def test_report_cli(study, tmp_path):
    _, out = study
    proc = subprocess.run([sys.executable, "-m", "ditkit", "study", "report", str(out), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "4/6 cells finished" in proc.stdout and "Spearman(Gflops, final FID) = -1.000" in proc.stdout
    assert json.loads((out / "study.json").read_text())["name"] == "study"
    proc = subprocess.run([sys.executable, "-m", "ditkit", "study", "report", str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "not a study folder" in proc.stderr and "Traceback" not in proc.stderr
