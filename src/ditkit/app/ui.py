"""The app's page: three tabs (Generate, Train monitor, Model explorer) wired to the plain modules.

Every handler turns a user's mistake (DitkitError) — and any other failure — into ``gr.Error``, which
shows the sentence in the page; the server keeps serving the next request.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from ..errors import DitkitError
from . import explorer, generation, monitor, require_gradio
from .models import ModelCache, model_choices

# Training grids of small models are tiny: scale them up without blurring.
CSS = ".pixelated img { image-rendering: pixelated; } #run-grid img { width: 100%; height: 100%; object-fit: contain; }"


@dataclass
class AppSettings:
    runs_dir: str = "runs"
    device: str = "cpu"
    max_images: int = generation.MAX_IMAGES
    out_root: str | None = None  # where downloads are written (a temporary folder by default)
    refresh_seconds: float = 3.0


def _shown_errors(fn):
    """Run a handler; failures become gr.Error so the page says what went wrong and the app carries on."""
    gr = require_gradio()

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except DitkitError as exc:  # the user's mistake: the page says it, the console stays quiet
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception as exc:  # a bug or an unreadable file: say so, keep serving
            raise gr.Error(f"{type(exc).__name__}: {exc}") from None

    return wrapper


def build_app(settings: AppSettings):
    """The gr.Blocks app (not launched)."""
    import tempfile

    gr = require_gradio()
    settings.out_root = settings.out_root or tempfile.mkdtemp(prefix="ditkit-app-")
    cache = ModelCache(settings.device)
    with gr.Blocks(title="ditkit", analytics_enabled=False) as app:
        gr.Markdown("# ditkit — Diffusion Transformers in the browser")
        with gr.Tab("Generate", id="generate"):
            model_inputs = _generate_tab(gr, settings, cache)
        with gr.Tab("Train monitor", id="monitor"):
            _monitor_tab(gr, app, settings)
        with gr.Tab("Model explorer", id="explorer"):
            _explorer_tab(gr)
        # On arrival: runs finished since the app started join the list; the default model's classes show.
        app.load(lambda: gr.update(choices=model_choices(settings.runs_dir)), None, model_inputs["model"])
        app.load(*model_inputs["on_model"])
    return app


# -- Generate ---------------------------------------------------------------------------------------------

def _model_inputs(gr, settings: AppSettings) -> dict:
    choices = model_choices(settings.runs_dir)
    c = {}
    with gr.Row():
        c["model"] = gr.Dropdown(choices, value=choices[0] if choices else None, label="Model",
                                 info="a bundled model or a recent run's checkpoint", scale=2, elem_id="model-choice")
        c["path"] = gr.Textbox(label="…or a checkpoint path", placeholder="runs/train/checkpoints/step-0001000 "
                               "or DiT-XL-2-256x256.pt", elem_id="checkpoint-path", scale=3)
    c["about"] = gr.Markdown(elem_id="model-about")
    c["classes"] = gr.Dropdown([], multiselect=True, label="Classes", info="none chosen: every class in turn",
                               elem_id="classes")
    with gr.Row():
        c["mode"] = gr.Radio([], label="Mode", visible=False, elem_id="mode")
        c["prompt"] = gr.Textbox(label="Prompt", visible=False, elem_id="prompt")
        c["negative"] = gr.Textbox(label="Negative prompt", visible=False)
        # a file, not gr.Image: gr.Image converts uploads itself (16-bit grey clipped to white; a non-image gets
        # Gradio's "Could not preprocess"); ditkit's reader scales deep images and names what it cannot read
        c["image"] = gr.File(label="Input image (image modes)", type="filepath", file_types=["image"], visible=False,
                             height=160, elem_id="input-image")
    return c


def _wire_model_choice(gr, c: dict, cache: ModelCache, sampler, scale, steps) -> None:
    """Choosing a model asks it what it takes and shows exactly those inputs."""

    @_shown_errors
    def on_model(model, path):
        found = cache.get(path.strip() or model)
        cond, recorded = found.conditioning, found.sampling()
        text, multi = cond.kind == "text", cond.kind == "multimodal"
        own_solver = multi and found.model.family != "flow"  # the official UniDiffuser has its own solver
        scale_info = "0 = none (UniDiffuser's scale)" if multi else "1 = none; 4 for visuals"
        return (found.about(), gr.update(choices=cond.class_names, value=[], visible=cond.kind == "class"),
                gr.update(visible=text or multi), gr.update(visible=text),
                gr.update(choices=cond.modes, value=cond.modes[0] if multi else None, visible=multi),
                gr.update(visible=multi),
                gr.update(visible=False) if own_solver else gr.update(value=recorded["sampler"], visible=True),
                gr.update(value=recorded["scale"], info=scale_info), recorded["steps"])

    outs = [c["about"], c["classes"], c["prompt"], c["negative"], c["mode"], c["image"], sampler, scale, steps]
    c["model"].change(on_model, [c["model"], c["path"]], outs)
    c["path"].submit(on_model, [c["model"], c["path"]], outs)
    c["on_model"] = (on_model, [c["model"], c["path"]], outs)


def _sampling_inputs(gr):
    """The sampling inputs, labelled and started as ``SamplingConfig`` declares them (the flags of every sampling
    command); choosing a model fills in what its checkpoint records (``AppModel.sampling``)."""
    from ..diffusion import DEFAULT_SAMPLER, SAMPLERS
    from ..pipelines.settings import SamplingConfig

    from ..precision import SAMPLING_PRECISIONS

    label = {f.name: f.metadata["label"] for f in SamplingConfig.knobs(("sampler", "steps", "cfg_scale", "seed",
                                                                          "precision"))}
    with gr.Row():
        scale = gr.Number(1.0, label=label["cfg_scale"], info="1 = none; 4 for visuals", elem_id="cfg-scale")
        sampler = gr.Dropdown([(f"{name} — {spec.about}" if spec.about else name, name)
                               for name, spec in SAMPLERS.items()], value=DEFAULT_SAMPLER, label=label["sampler"],
                              info="the sampler registry; choosing one sets its default steps", elem_id="sampler")
        steps = gr.Slider(1, 250, value=SAMPLERS[DEFAULT_SAMPLER].default_steps, step=1, label=label["steps"],
                          elem_id="steps")
        precision = gr.Dropdown(list(SAMPLING_PRECISIONS), value=SamplingConfig.default("precision"),
                                label=label["precision"], info="auto: bf16 where this machine does it natively",
                                elem_id="precision")
    return scale, sampler, steps, precision, SamplingConfig.default("seed"), label["seed"]


def _generate_tab(gr, settings: AppSettings, cache: ModelCache):
    from ..diffusion import SAMPLERS

    c = _model_inputs(gr, settings)
    scale, sampler, steps, precision, seed_default, seed_label = _sampling_inputs(gr)
    with gr.Row():
        seed = gr.Number(seed_default, precision=0, label=seed_label, minimum=0, elem_id="seed")
        random_seed = gr.Checkbox(False, label="random seed")
        count = gr.Slider(1, settings.max_images, value=min(8, settings.max_images), step=1,
                          label=f"Images (at most {settings.max_images})", elem_id="num-images")
    # a user's choice only (.input): a model's recorded sampler arrives with its own steps
    sampler.input(lambda name: gr.update(value=min(SAMPLERS[name].default_steps, 250)), sampler, steps,
                   show_progress="hidden")
    _wire_model_choice(gr, c, cache, sampler, scale, steps)
    button = gr.Button("Generate", variant="primary", elem_id="generate-button")
    gallery = gr.Gallery(label="Samples", columns=8, height=300, format="png", elem_id="gallery",
                         elem_classes=["pixelated"], object_fit="contain")
    captions = gr.Textbox(label="Captions", visible=False, lines=2, elem_id="captions", interactive=False)
    command = gr.Code(label="Reproduce with", language="shell", elem_id="command", wrap_lines=True, lines=2,
                      max_lines=4)
    files = gr.File(label="Downloads: grid, .npz (ADM format), all PNGs (.zip)", file_count="multiple",
                    elem_id="downloads")

    @_shown_errors
    def on_generate(model, path, classes, prompt, negative, mode, image, scale, sampler, steps, precision, seed,
                    random_seed, count, progress=gr.Progress()):
        request = generation.GenerateRequest(
            model=(path or "").strip() or model, classes=classes, sampler=sampler, steps=steps, cfg_scale=scale,
            seed=None if random_seed else seed, num_images=count, prompt=prompt, negative_prompt=negative, mode=mode,
            image=image, precision=precision)
        progress(0, desc="loading the model")

        def report(done, total):
            progress((done, total), desc="sampling", unit="steps")

        result = generation.generate(request, cache, out_root=settings.out_root, max_images=settings.max_images,
                                     report=report)
        images = [(str(p), caption) for p, caption in zip(result.pngs, result.captions)]
        texts = gr.update(value="\n".join(result.texts), visible=bool(result.texts))
        return images, texts, result.command, [str(p) for p in result.downloads]

    inputs = [c["model"], c["path"], c["classes"], c["prompt"], c["negative"], c["mode"], c["image"], scale, sampler,
              steps, precision, seed, random_seed, count]
    button.click(on_generate, inputs, [gallery, captions, command, files], concurrency_limit=1,
                 concurrency_id="sampling")
    return c


# -- Train monitor ----------------------------------------------------------------------------------------

def _monitor_tab(gr, app, settings: AppSettings) -> None:
    runs = [str(p) for p in monitor.find_runs(settings.runs_dir)]
    with gr.Row():
        recent = gr.Dropdown(runs, value=None, label="Recent runs", info=f"under {settings.runs_dir}", scale=2)
        folder = gr.Textbox(label="Run folder", placeholder="runs/train", elem_id="run-folder", scale=3)
        show = gr.Button("Show", elem_id="show-run", scale=1)
    live = gr.Checkbox(True, label=f"refresh every {settings.refresh_seconds:g} s while it trains")
    summary = gr.Markdown(elem_id="run-summary")
    curves = gr.Plot(label="Loss and evaluation curves", elem_id="run-curves")
    with gr.Row():
        grid = gr.Image(label="Latest EMA sample grid", type="filepath", elem_id="run-grid",
                        elem_classes=["pixelated"], height=300)
        config = gr.Code(label="train_config.json", language="json", elem_id="run-config", max_lines=16)
    timer = gr.Timer(settings.refresh_seconds)

    def view(path):
        status = monitor.read_run(path)
        return (status.summary(), monitor.plot_run(status), None if status.grid is None else str(status.grid),
                json.dumps(status.config, indent=2))

    def on_tick(path, live):
        if not live or not (path or "").strip():
            return [gr.skip()] * 4
        try:
            return view(path)
        except DitkitError:  # the folder may not exist yet: wait quietly for the next tick
            return [gr.skip()] * 4

    outs = [summary, curves, grid, config]
    app.load(lambda: gr.update(choices=[str(p) for p in monitor.find_runs(settings.runs_dir)]), None, recent)
    recent.change(lambda p: p or gr.skip(), recent, folder)
    show.click(_shown_errors(view), folder, outs, concurrency_id="monitor")
    folder.submit(_shown_errors(view), folder, outs, concurrency_id="monitor")
    timer.tick(on_tick, [folder, live], outs, concurrency_id="monitor", show_progress="hidden")


# -- Model explorer ---------------------------------------------------------------------------------------

def _explorer_tab(gr) -> None:
    from ..models.registry import BLOCKS

    gr.Markdown("Gflops are forward multiply-accumulates per image, counted by running the model on the meta "
                "device, as the DiT paper counts them.")
    with gr.Row():
        size = gr.Radio(list(explorer.SIZES), value="XL", label="Size")
        patch = gr.Radio([str(p) for p in explorer.PATCHES], value="2", label="Patch")
        block = gr.Dropdown(list(BLOCKS), value="adaln-zero", label="Block design")
        image_size = gr.Number(256, precision=0, label="Image size (px)", elem_id="image-size")
        space = gr.Radio(["latent", "pixel"], value="latent", label="Space", info="latent: SD VAE /8")
    button = gr.Button("Count", elem_id="count-button")
    result = gr.Markdown(elem_id="explorer-result")
    table = gr.Dataframe(explorer.paper_table("DiT-XL/2"), headers=explorer.TABLE_HEADERS,
                         label="The paper's table (256 px, adaLN-Zero)", interactive=False)

    @_shown_errors
    def on_count(size, patch, block, image_size, space):
        found = explorer.explore(size, int(patch), block, image_size, space)
        return explorer.summary_markdown(found, block, int(image_size)), explorer.paper_table(found["name"])

    button.click(on_count, [size, patch, block, image_size, space], [result, table], concurrency_id="explorer")
