"""``ditkit app`` driven through headless Chromium (Debian's ``chromium``, via Playwright; no browser download).

One app process on a free port serves every step: generate a grid from the bundled model, a bad checkpoint
path shows its error in the page and the next generation still works, two pages generating at once are
both served, the monitor shows a short training run made here, the explorer counts Gflops.
Set DITKIT_APP_SCREENSHOTS=docs to refresh the screenshots in docs/app.md (docs/app-*.png).
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("DITKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_run(runs: Path) -> Path:
    """A few training steps of a tiny pixel DiT, with an EMA grid and a checkpoint (through the library)."""
    from ditkit.training import TrainConfig, train

    out = runs / "tiny"
    train(TrainConfig(data="mnist", image_size=8, model="DiT-S/2",
                      model_overrides={"depth": 2, "hidden_size": 32, "num_heads": 2, "patch_size": 4},
                      max_steps=4, global_batch_size=4, log_every=1, ckpt_every=4, sample_every=2, sample_count=4,
                      sample_steps=2, ema_decay=0.5, seed=1, progress=False, out=str(out)))
    return out


def _tiny_unidiffuser(folder: Path) -> Path:
    from ditkit.models.caption_decoder import build_vocab
    from ditkit.pipelines.unidiffuser import UniDiffuser

    UniDiffuser.build(image_size=8, uvit=dict(embed_dim=32, depth=2, num_heads=2, text_dim=8),
                      text_encoder={"type": "text", "spec": "chars", "max_length": 12}, image_encoder="pooled:2",
                      vocab=build_vocab(["a red circle", "a blue square"]), decoder=dict(width=32, depth=1, heads=2),
                      seed=0).save(folder)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    run = _tiny_run(runs)
    uni = _tiny_unidiffuser(tmp_path_factory.mktemp("models") / "tiny-uni")
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "ditkit", "app", "--port", str(port), "--device", "cpu",
                             "--runs-dir", str(runs), "--max-images", "8"], cwd=runs, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line, lines = "", []
    deadline = time.monotonic() + 90
    while "serving on" not in line:
        line = proc.stdout.readline()
        lines.append(line)
        if not line and proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("ditkit app did not start:\n" + "".join(lines))
    yield {"url": f"http://127.0.0.1:{port}/", "run": run, "uni": uni, "proc": proc}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('the browser test needs playwright: pip install -e ".[test]"')
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: install it (apt-get install -y chromium), as ./run test does")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        try:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900})
        except Exception as exc:  # noqa: BLE001 - say why in one place, do not skip
            pytest.fail(f"headless Chromium ({CHROMIUM}) could not start: {exc}")
        yield context
        context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = ROOT / "docs" if os.environ.get("DITKIT_APP_SCREENSHOTS") == "docs" else tmp_path_factory.mktemp("shots")
    return lambda page, name: page.screenshot(path=str(folder / name), full_page=True)


OUTSIDE = []  # requests the pages made to anywhere but the app (the app is local and offline)


def _open(browser, url):
    page = browser.new_page()
    page.on("request", lambda r: None if r.url.startswith((url, "data:", "blob:")) else OUTSIDE.append(r.url))
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#generate-button")
    page.get_by_text("conditioning: class").wait_for()  # the default model has been asked what it takes
    return page


def _set_number(page, elem_id: str, value) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def _generate(page, *, seed: int, count: int = 4, steps: int = 4, path: str = "") -> None:
    page.locator("#checkpoint-path textarea, #checkpoint-path input").first.fill(path)
    _set_number(page, "steps", steps)
    _set_number(page, "num-images", count)
    page.locator("#seed input").fill(str(seed))
    page.click("#generate-button")


def _wait_gallery(page, seed: int, count: int) -> None:
    """The result of *this* request: the command shows its seed, the gallery its images."""
    page.locator("#command").get_by_text(re.compile(rf"--seed {seed}\b")).wait_for()
    page.wait_for_function(f"document.querySelectorAll('#gallery img').length === {count}")


def test_generate_errors_and_concurrency(server, browser, shots):
    page = _open(browser, server["url"])
    _generate(page, seed=3, count=4)
    _wait_gallery(page, 3, 4)
    command = page.locator("#command").inner_text()
    assert "ditkit sample" in command and "--checkpoint mnist-dit" in command and "--steps 4" in command
    downloads = re.sub(r"\s+", "", page.locator("#downloads").inner_text())  # names are split into spans
    assert "grid.png" in downloads and "samples.npz" in downloads and "samples.zip" in downloads
    shots(page, "app-generate.png")

    _generate(page, seed=5, path="/no/such/checkpoint")
    page.get_by_text("the path does not exist").first.wait_for()  # gr.Error, shown in the page
    _generate(page, seed=6, count=3, path="")  # the app keeps serving
    _wait_gallery(page, 6, 3)

    other = _open(browser, server["url"])  # two requests at once: the queue serves both
    _generate(page, seed=7, count=2)
    _generate(other, seed=8, count=2)
    _wait_gallery(page, 7, 2)
    _wait_gallery(other, 8, 2)
    other.close()
    page.close()


def test_a_unidiffuser_model_shows_its_modes(server, browser):
    page = _open(browser, server["url"])
    box = page.locator("#checkpoint-path textarea, #checkpoint-path input").first
    box.fill(str(server["uni"]))
    box.press("Enter")  # the page asks the model what it takes
    page.get_by_text("conditioning: multimodal").wait_for()
    assert page.locator("#mode").is_visible() and not page.locator("#classes").is_visible()
    assert not page.locator("#sampler").is_visible()  # UniDiffuser samples with its own solver
    page.get_by_label("t2i", exact=True).check()
    page.locator("#prompt textarea, #prompt input").first.fill("a red circle")
    _generate(page, seed=9, count=2, steps=3, path=str(server["uni"]))
    _wait_gallery(page, 9, 2)
    assert "ditkit uni t2i" in page.locator("#command").inner_text()
    page.close()


def test_the_bundled_unidiffuser_is_listed_and_runs_every_mode(server, browser, tmp_path):
    from PIL import Image

    from ditkit.checkpoints.unidiffuser import read_unidiffuser_config
    from ditkit.diffusion.unidiffuser import MODES
    from ditkit.evaluation.digit_scoring import digit_test_items
    from ditkit.imaging import to_uint8
    from ditkit.pipelines.unidiffuser import MODE_INPUTS

    page = _open(browser, server["url"])
    page.locator("#model-choice input").first.click()  # the dropdown lists the bundled UniDiffuser with the DiTs
    page.get_by_role("option", name="mnist-uni").wait_for()
    page.keyboard.press("Escape")
    box = page.locator("#checkpoint-path textarea, #checkpoint-path input").first
    box.fill("mnist-uni")
    box.press("Enter")
    page.get_by_text("conditioning: multimodal").wait_for()
    flow = read_unidiffuser_config("mnist-uni").get("process", {}).get("process") == "flow"
    assert page.locator("#sampler").is_visible() == flow  # a flow model's sampler is a choice; v1's is fixed
    _, _, item = digit_test_items(1, 32)
    digit = tmp_path / "digit.png"
    Image.fromarray(to_uint8(item(0))[..., 0]).save(digit)
    for k, mode in enumerate(MODES):
        page.get_by_label(mode, exact=True).check()
        if MODE_INPUTS[mode] == "prompts":
            page.locator("#prompt textarea, #prompt input").first.fill("a handwritten seven")
        if MODE_INPUTS[mode] == "images" and mode == "i2t":  # uploaded once; i2t2i reuses the shown file
            page.locator("#input-image input[type=file]").set_input_files(str(digit))
            page.locator("#input-image").get_by_text("digit.png").wait_for()
        _generate(page, seed=30 + k, count=2 if MODE_INPUTS[mode] is None else 1, steps=2, path="mnist-uni")
        page.locator("#command").get_by_text(re.compile(rf"ditkit uni {mode} .*--seed {30 + k}\b")).wait_for()
        if mode in ("i2t", "t", "joint", "t2i2t"):  # a caption comes back
            page.wait_for_function("document.querySelector('#captions textarea').value.length > 0")
        if mode in ("t2i", "i", "joint", "i2t2i"):
            count = 2 if MODE_INPUTS[mode] is None else 1
            page.wait_for_function(f"document.querySelectorAll('#gallery img').length === {count}")
    page.close()


def test_monitor_and_explorer(server, browser, shots):
    page = _open(browser, server["url"])
    page.get_by_role("tab", name="Train monitor").click()
    page.locator("#run-folder textarea, #run-folder input").first.fill(str(server["run"]))
    page.click("#show-run")
    page.locator("#run-summary").get_by_text("step 4 of 4").wait_for()
    page.locator("#run-summary").get_by_text("images/s").wait_for()
    page.wait_for_selector("#run-grid img")
    page.wait_for_selector("#run-curves img, #run-curves svg, #run-curves canvas")
    assert '"max_steps": 4' in page.locator("#run-config").inner_text()
    with open(server["run"] / "metrics.jsonl", "a") as f:  # an evaluation lands while the page is open
        f.write('{"step": 4, "eval": {"fid": 123.4}}\n')
    page.locator("#run-summary").get_by_text("fid 123.400").wait_for()  # the timer refreshed the page
    shots(page, "app-monitor.png")

    page.get_by_role("tab", name="Model explorer").click()
    page.click("#count-button")
    page.locator("#explorer-result").get_by_text("118.62").first.wait_for()
    assert "256" in page.locator("#explorer-result").inner_text()  # tokens of XL/2 at 256 px
    shots(page, "app-explorer.png")
    page.close()
    assert not OUTSIDE, f"the pages reached outside the app: {OUTSIDE[:5]}"
