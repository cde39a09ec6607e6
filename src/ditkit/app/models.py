"""Which models the app offers, what each one takes as conditioning, and a small cache of loaded ones."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DitkitError

RECENT_LIMIT = 12  # recent run checkpoints offered in the model list


def recent_checkpoints(runs_dir: str | Path | None, limit: int = RECENT_LIMIT) -> list[Path]:
    """Checkpoint folders (``<run>/checkpoints/step-*`` with a config.json) under ``runs_dir``, newest first."""
    if runs_dir is None or not Path(runs_dir).is_dir():
        return []
    found = [p.parent for p in Path(runs_dir).glob("*/checkpoints/step-*/config.json")]
    found += [p.parent for p in Path(runs_dir).glob("checkpoints/step-*/config.json")]  # runs_dir is one run
    found = sorted((p for p in set(found) if _samplable(p)), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[:limit]


def _samplable(folder: Path) -> bool:
    """Not a stage-1 caption decoder: it trains a U-ViT, it does not sample (``checkpoints.format.decoder_message``)."""
    import json

    from ..checkpoints.format import DECODER_FORMAT

    try:
        return json.loads((folder / "config.json").read_text()).get("format") != DECODER_FORMAT
    except (OSError, ValueError, AttributeError):
        return True  # loading it names the problem


def model_choices(runs_dir: str | Path | None) -> list[str]:
    """The model dropdown: bundled names first, then recent run checkpoints (as paths)."""
    from ..checkpoints import bundled_models

    return list(bundled_models()) + [str(p) for p in recent_checkpoints(runs_dir)]


@dataclass
class Conditioning:
    """What a model takes, asked of the model and its checkpoint rather than assumed.

    ``kind``: "class" (class labels; ``class_names`` index them), "text" (a prompt and a negative prompt),
    "multimodal" (a UniDiffuser model: the ``modes`` it samples, and which input each takes), or "none"
    (unconditional).
    """

    kind: str
    class_names: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    mode_inputs: dict = field(default_factory=dict)  # mode -> "prompts" | "images" | None

    @property
    def guidance(self) -> bool:
        return self.kind != "none"


@dataclass
class AppModel:
    """A loaded model ready for the Generate tab."""

    model: object  # a DiT, or a UniDiffuser (pipelines.unidiffuser)
    checkpoint: str
    conditioning: Conditioning
    codec: object = None
    loaded: object = None  # DiTs: their pipelines.DiTPipeline (diffusion settings, class names, recorded sampling)
    text_codec: object = None  # text DiTs: their frozen text encoder
    name: str | None = None  # a bundled model's name

    def sampling(self) -> dict:
        """What the Generate tab starts from for this model: the sampler, steps and guidance scale its checkpoint
        records (the ones bare ``ditkit sample`` / ``ditkit uni`` use), else its process's defaults."""
        if self.conditioning.kind == "multimodal":
            return self.model.sampling_settings()
        from ..pipelines.folder import SampleSettings

        resolved = SampleSettings(cfg_scale=None if self.conditioning.guidance else 1.0).resolved_for(self.loaded)
        return {"sampler": resolved.sampler, "steps": resolved.steps, "scale": resolved.cfg_scale}

    def about(self) -> str:
        if self.conditioning.kind == "multimodal":
            cfg = self.model.uvit.config
            shape = f"{self.model.image_size} px images, U-ViT depth {cfg.depth}, width {cfg.embed_dim}"
        else:
            cfg = self.model.config
            shape = (f"{cfg.input_size}×{cfg.input_size}×{cfg.in_channels} input, patch {cfg.patch_size}, depth "
                     f"{cfg.depth}, width {cfg.hidden_size}")
        return f"`{self.name or self.checkpoint}` · {shape} · conditioning: {self.conditioning.kind}"


def describe(loaded) -> Conditioning:
    """The conditioning of a loaded DiT (``pipelines.LoadedModel``)."""
    config = loaded.model.config
    if getattr(config, "text_dim", 0):  # a text block (cross-text, joint-text): conditioned on encoded text
        return Conditioning("text")
    num_classes = getattr(config, "num_classes", 0) or 0
    if num_classes == 0:
        return Conditioning("none")
    names = [str(n) for n in loaded.class_names or []]
    if len(names) != num_classes:  # official files carry no names: number them
        names = [str(i) for i in range(num_classes)]
    return Conditioning("class", class_names=names)


def resolve_spec(spec: str | None) -> str:
    """A dropdown value or typed path → what ``load_pipeline`` takes; a missing path is an error here."""
    from ..checkpoints import bundled_models

    spec = (spec or "").strip()
    if not spec:
        raise DitkitError("choose a model: a bundled name or a checkpoint path")
    if spec in bundled_models():
        return spec
    path = Path(spec).expanduser()
    looks_like_path = "/" in spec or spec.endswith((".pt", ".pth", ".safetensors")) or path.exists()
    if looks_like_path and not path.exists():
        raise DitkitError(f"no checkpoint at {spec}: the path does not exist")
    return str(path) if looks_like_path else spec


class ModelCache:
    """Keeps the last few loaded models (and their codecs) so repeated requests skip loading.

    ``lock`` serialises use of a cached model: progress hooks are attached to it per request.
    """

    def __init__(self, device: str = "cpu", size: int = 2):
        self.device, self.size = device, size
        self.lock = threading.RLock()
        self._items: OrderedDict[str, tuple] = OrderedDict()

    def get(self, spec: str | None) -> AppModel:
        """The loaded model for a spec; DitkitError for a bad or incompatible one."""
        from ..checkpoints import bundled_models

        key = resolve_spec(spec)
        with self.lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            item = _load(key, self.device)
            item.name = key if key in bundled_models() else None
            self._items[key] = item
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return item


def _load(spec: str, device) -> AppModel:
    from ..pipelines import DiTPipeline, load_pipeline

    pipe = load_pipeline(spec, device=device)  # a DiTPipeline, or a UniDiffuser (a folder or a bundled name)
    if not isinstance(pipe, DiTPipeline):
        from ..checkpoints.bundled import locate
        from ..diffusion.unidiffuser import MODES
        from ..pipelines.unidiffuser import MODE_INPUTS

        modes = Conditioning("multimodal", modes=list(MODES), mode_inputs=dict(MODE_INPUTS))
        return AppModel(model=pipe, checkpoint=str(locate(spec).resolve()), conditioning=modes)
    return AppModel(model=pipe.model, checkpoint=pipe.checkpoint, conditioning=describe(pipe), codec=pipe.codec,
                    loaded=pipe, text_codec=pipe.text_codec)
