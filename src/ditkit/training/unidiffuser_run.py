"""UniDiffuser under ``ditkit train``: the caption decoder first, then the U-ViT, both through the DiT engine.

    ditkit train --data shapes --model caption-decoder --text-encoder minilm ...   (stage 1: words ↔ text tokens)
    ditkit train --data shapes --model uvit-small --text-encoder minilm --init-from DECODER_CKPT ...   (stage 2)

A *run family* (registered in ``families.py``) gives the loop what differs from a DiT run: the data (captioned
images, kept as pixels: the batch needs the images for the CLIP-image token too), the model config stored in
checkpoints (compared on resume), the module the optimizer trains, the objective, the progress output and how a
checkpoint's EMA is written so that it loads elsewhere. Everything else — torchrun, resume, EMA, bf16, atomic
checkpoints, keep-last, NaN stop — is the engine's, unchanged.

- ``caption-decoder``: a ``WordPrefixDecoder`` and its ``encode_prefix`` (the learned reduction of the frozen
  text encoder's states to the 64-d text tokens) trained with ``CaptionDecoderObjective``; checkpoints are
  ``ditkit-caption-decoder`` folders (config.json + model.safetensors); progress: reconstructed captions.
- ``uvit``: a ``UViTTrainNet`` (the U-ViT, plus the frozen caption decoder so that one state dict is a whole
  UniDiffuser) trained with ``UniDiffuserObjective`` on ``UniDiffuser.training_batch``; checkpoints are
  UniDiffuser folders (``UniDiffuser.save``), so ``ditkit uni --checkpoint CKPT`` samples them; progress: a
  captioned t2i grid of the EMA.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, replace

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..codecs import make_codec
from ..codecs.image_semantics import make_image_encoder
from ..diffusion import DiffusionConfig
from ..errors import DitkitError
from ..fileio import atomic_write_json, atomic_write_text
from ..models.caption_decoder import WordPrefixDecoder, build_vocab
from ..models.uvit import UViT, UViTConfig
from ..pipelines.unidiffuser import TextNorm, UniDiffuser, make_text_encoder
from ..version import __version__
from .build import Data
from .hooks import SampleGridHook
from .text import open_captions
from .outputs import fork_rng_around
from .uni_text_table import TextTokenTable
from .unidiffuser_objective import UniDiffuserFlowObjective, UniDiffuserObjective

DECODER_FORMAT = "ditkit-caption-decoder"
VOCAB_CAPTIONS = 5_000  # captions scanned for the decoder's vocabulary (shapes: all 35 words within 500)
CAPTION_TOKENS = 24      # caption length the decoder trains on (as its generate's default)
NORM_CAPTIONS = 5_000    # captions a flow run measures its text normalisation on, without a --text-cache table
DECODER_FIT_NATS = 0.5   # a stage-1 decoder above this cross-entropy per caption token is called untrained
# U-ViT presets for small images (pixel space); the official v1 is UViTConfig() itself.
UVIT_PRESETS = {"uvit-tiny": dict(embed_dim=64, depth=2, num_heads=2, patch_size=4),
                "uvit-small": dict(embed_dim=256, depth=8, num_heads=4, patch_size=4),
                "uvit-base": dict(embed_dim=512, depth=12, num_heads=8, patch_size=2)}
DECODER_PRESET = dict(width=128, depth=2, heads=4)
# ditkit train's shape flags → each model's own field names
_UVIT_FLAGS = {"depth": "depth", "hidden_size": "embed_dim", "num_heads": "num_heads", "patch_size": "patch_size",
               "mlp_ratio": "mlp_ratio"}
_DECODER_FLAGS = {"depth": "depth", "hidden_size": "width", "num_heads": "heads"}


class FamilyModelConfig(dict):
    """The model config a family stores in checkpoints (a plain dict; no learned sigma)."""

    learn_sigma = False

    def to_dict(self) -> dict:
        return dict(self)


class UViTTrainNet(nn.Module):
    """What the optimizer steps: the U-ViT; the caption decoder rides along frozen, so the (EMA) state dict
    has a whole UniDiffuser's keys (``uvit.*``, ``caption_decoder.*``)."""

    def __init__(self, uvit: UViT, caption_decoder: nn.Module):
        super().__init__()
        self.uvit, self.caption_decoder = uvit, caption_decoder.requires_grad_(False)

    def forward(self, img, clip_img, text, t_img, t_text, data_type):  # the three noise predictions
        return self.uvit(img, clip_img, text, t_img, t_text, data_type)

    @property
    def gradient_checkpointing(self) -> bool:  # --grad-checkpointing reaches the U-ViT's blocks
        return self.uvit.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, on: bool) -> None:
        self.uvit.gradient_checkpointing = bool(on)


def _shape_overrides(config, names: dict, family: str) -> dict:
    unknown = sorted(set(config.model_overrides) - set(names))
    if unknown:
        raise DitkitError(f"--{unknown[0].replace('_', '-')} does not apply to a {family} model")
    return {names[k]: v for k, v in config.model_overrides.items()}


def read_decoder_folder(path: str) -> tuple[dict, dict]:
    """A caption-decoder checkpoint's config and (EMA) weights; one DitkitError if it is not one."""
    from ..checkpoints.format import read_json

    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise DitkitError(f"--init-from {path}: not a caption-decoder checkpoint (no config.json)")
    config = read_json(config_path)
    if config.get("format") != DECODER_FORMAT:
        raise DitkitError(f"--init-from {path}: not a caption-decoder checkpoint (train one with "
                          "--model caption-decoder)")
    try:
        return config, load_file(os.path.join(path, "model.safetensors"))
    except (OSError, RuntimeError) as exc:
        raise DitkitError(f"cannot read the caption decoder weights in {path}: {exc}") from exc


def _words(caption: str) -> list[str]:
    return caption.lower().split()


class CaptionRun:
    """What both stages share: the captioned data as pixels and the frozen text encoder."""

    name = "caption"
    trains_dit = False  # --dispersive-loss reads a DiT's blocks: not these models'
    process_fields = ("learn_sigma",)  # DiffusionConfig fields a stage takes (learn_sigma follows the model)
    fixed = "the caption decoder trains with cross-entropy, no diffusion process (use explicit flags, not --recipe fast)"

    def __init__(self, config):
        changed = [k for k, v in asdict(config.diffusion).items()
                   if k not in self.process_fields and v != getattr(DiffusionConfig(), k)]
        if changed:  # the objectives below fix the rest of their process
            raise DitkitError(f"--{changed[0].replace('_', '-')} does not apply to a {config.model} run: " + self.fixed)
        if config.uni_condition_share and self.name != "uvit":
            raise DitkitError(f"--uni-condition-share does not apply to a {config.model} run (it trains the U-ViT)")
        self.config = config
        self.text_spec = config.text_encoder or "minilm"
        self.text = None

    @classmethod
    def claims(cls, config) -> bool:
        """``--model`` is the family's name or starts with it and a dash (``uvit-small``)."""
        model = str(config.model)
        return model == cls.name or model.startswith(cls.name + "-")

    def open(self, config, d) -> Data:
        dataset, image_size = open_captions(config, d)
        self.dataset, self.device, self.d, self.image_size = dataset, d.device, d, image_size
        self.text = make_text_encoder(self.text_spec, device=d.device)
        self.codec = codec = make_codec(config.vae, image_channels=dataset.channels).to(d.device)
        # pixels reach the objective: the image token, the CLIP-image token and the codec all start from them
        return Data(dataset, codec, False, dataset.channels, image_size, image_size)

    def prompts(self, count: int) -> list[str]:
        return [self.dataset.caption(i) for i in range(min(len(self.dataset), count))]

    def vocab(self) -> list[str]:
        return build_vocab(self.prompts(VOCAB_CAPTIONS))

    def check_resume(self, model_config: FamilyModelConfig, resumed: dict | None) -> FamilyModelConfig:
        if resumed is not None:
            saved = resumed["state"]["model_config"]
            diffs = sorted(k for k in set(saved) | set(model_config) if saved.get(k) != model_config.get(k))
            if diffs:
                raise DitkitError(f"cannot resume: the model differs from the checkpoint's in {', '.join(diffs)}")
        return model_config

    def load_init(self, model, config, resumed) -> list[str]:  # --init-from is read by model_config/create_model
        return []

    def extra(self) -> dict:
        return {}

    def save_cache(self) -> None:  # nothing left to save (the uvit stage's --text-cache is written up front)
        pass


class CaptionDecoderRun(CaptionRun):
    """Stage 1: the caption decoder and its reduction, from the frozen encoder's states of the data's captions."""

    name = "caption-decoder"

    def model_config(self, config, resumed) -> FamilyModelConfig:
        fields = {**DECODER_PRESET, "text_dim": 64, **_shape_overrides(config, _DECODER_FLAGS, self.name)}
        cfg = FamilyModelConfig(family=self.name, text_encoder=self.text.to_config(),
                                caption_decoder={"type": "words", "vocab": self.vocab(),
                                                 "text_width": self.text.width, **fields})
        return self.check_resume(cfg, resumed)

    def create_model(self, model_config) -> nn.Module:
        spec = dict(model_config["caption_decoder"])
        spec.pop("type")
        self.decoder = DecoderTrainNet(spec.pop("vocab"), **spec)
        return self.decoder

    def objective(self, diffusion):
        return DecoderBatchObjective(self)

    def export(self, ema: nn.Module, folder: str, extra: dict) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.state_dict().items()},
                  os.path.join(folder, "model.safetensors"))
        atomic_write_json(os.path.join(folder, "config.json"), {
            "format": DECODER_FORMAT, "ditkit_version": __version__, "caption_decoder": ema.to_config(),
            "text_encoder": self.text.to_config(), "extra": extra})

    def grid_hook(self, run_dir: str, codec, config):
        return DecoderProgressHook(run_dir, config, self)

    def eval_fn(self, config, data):
        """``--fid-every``: how well the EMA decoder reads the first ``--fid-samples`` captions back from their
        frozen text states: ``decoder_exact`` (the share decoded word for word, greedy) and ``decoder_nats``
        (cross-entropy per caption token)."""
        captions = self.prompts(config.fid_samples)

        @torch.no_grad()
        def reconstruction(ema, step: int) -> dict[str, float]:
            states = self.text.encode(captions).states.to(self.device)  # (N, L, W)
            prefix = ema.encode_prefix(states)  # (N, T, text_dim)
            nats = ema.token_losses(prefix, ema.ids_of(captions, CAPTION_TOKENS).to(self.device)).mean().item()
            decoded = ema.generate(prefix, beam_size=1, max_tokens=CAPTION_TOKENS)
            exact = sum(_words(a) == _words(b) for a, b in zip(captions, decoded)) / len(captions)
            return {"decoder_exact": exact, "decoder_nats": nats}

        return reconstruction


class DecoderTrainNet(WordPrefixDecoder):
    """The decoder with a forward that returns its per-caption loss, so DDP sees the whole step through
    ``forward``; same weights and keys as a ``WordPrefixDecoder``."""

    def forward(self, states: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:  # (N, L, W), (N, Lc) → (N,)
        return self.token_losses(self.encode_prefix(states), ids)


class DecoderBatchObjective:
    """``CaptionDecoderObjective`` on a ``{"x", "caption"}`` batch: captions → frozen states and token ids."""

    def __init__(self, run: CaptionDecoderRun):
        self.run = run

    def __call__(self, net, batch, generator=None):
        captions, device = list(batch["caption"]), batch["x"].device
        states = self.run.text.encode(captions).states.to(device)  # (N, L, W), frozen
        ids = self.run.decoder.ids_of(captions, CAPTION_TOKENS).to(device)  # (N, CAPTION_TOKENS)
        return {"loss": net(states, ids)}


class DecoderProgressHook(SampleGridHook):
    """Stage 1's progress: the first captions of the data, encoded and decoded back by the EMA decoder."""

    def __init__(self, run_dir, config, run: CaptionDecoderRun):
        super().__init__(run_dir, None, config)
        self.run = run

    def __call__(self, state) -> None:
        prompts = self.run.prompts(self.config.sample_count)
        states = self.run.text.encode(prompts).states.to(self.run.device)
        decoded = fork_rng_around(state.ema.generate, state.ema.encode_prefix(states))
        lines = [f"{p}\t→\t{q}" for p, q in zip(prompts, decoded)]
        path = os.path.join(self.run_dir, "samples", f"step-{state.step:07d}.txt")
        atomic_write_text(path, "\n".join(lines) + "\n")


class UniDiffuserRun(CaptionRun):
    """Stage 2: the U-ViT on (image, CLIP-image token, text tokens) with the decoder's reduction frozen, on the
    official process (the Stable Diffusion scaled-linear schedule, ε-MSE per modality) or on flow matching
    (``--process flow`` or ``--recipe fast``: its time sampling flags apply; the checkpoint records it)."""

    name = "uvit"
    process_fields = ("learn_sigma", "process", "prediction", "time_sampling", "time_mean", "time_std", "time_shift")
    fixed = ("a UniDiffuser trains on the Stable Diffusion scaled-linear schedule with the plain ε-MSE of each "
             "modality, or with flow matching (--process flow and its time-sampling flags)")

    def __init__(self, config):
        super().__init__(config)
        if config.fid_every and config.data != "shapes":
            raise DitkitError(f"--fid-every scores a UniDiffuser run with the shapes attribute classifier (t2i, i2t, "
                              f"joint), so it needs --data shapes; this run trains on {config.data}")
        self.decoder_weights, self.text_norm = None, None

    def _decoder_config(self, config, resumed) -> dict:
        if resumed is not None and not config.init_from:  # the decoder rides in the checkpoint
            return resumed["state"]["model_config"]["caption_decoder"]
        if not config.init_from:
            if config.resume is None:
                print("ditkit train: note: no --init-from caption decoder: its reduction stays at its random "
                      "initialisation and i2t captions will be noise (train one with --model caption-decoder)",
                      file=sys.stderr)
            return {"type": "words", "vocab": self.vocab(), "text_width": self.text.width, "text_dim": 64,
                    **DECODER_PRESET}
        saved, self.decoder_weights = read_decoder_folder(config.init_from)
        if saved["text_encoder"].get("spec") != self.text.to_config().get("spec"):
            raise DitkitError(f"--init-from {config.init_from}: the caption decoder was trained on the "
                              f"{saved['text_encoder'].get('spec')} text encoder, this run uses {self.text_spec}")
        return saved["caption_decoder"]

    def model_config(self, config, resumed) -> FamilyModelConfig:
        if config.fsdp:  # the frozen decoder runs outside the sharded forward (training_batch)
            raise DitkitError("--fsdp does not support UniDiffuser runs yet; train them with DDP (plain torchrun)")
        decoder = self._decoder_config(config, resumed)
        preset = config.model if config.model in UVIT_PRESETS else None
        if preset is None:
            raise DitkitError(f"unknown U-ViT preset {config.model!r}; expected one of {', '.join(UVIT_PRESETS)}")
        data = self.dataset
        image_encoder = make_image_encoder("pooled:4", channels=data.channels)
        codec, image_size = self.codec, self.image_size
        uvit = {**UViTConfig().to_dict(), **UVIT_PRESETS[preset], **_shape_overrides(config, _UVIT_FLAGS, "U-ViT"),
                "img_size": codec.latent_size(image_size), "in_chans": codec.latent_channels,
                "num_text_tokens": self.text.max_length, "clip_img_dim": image_encoder.dim,
                "text_dim": decoder["text_dim"]}
        cfg = FamilyModelConfig(family=self.name, uvit=UViTConfig(**uvit).to_dict(), caption_decoder=decoder,
                                text_encoder=self.text.to_config(), image_encoder=image_encoder.to_config(),
                                codec=codec.to_config(), image_size=image_size)
        return self.check_resume(cfg, resumed)

    def create_model(self, model_config) -> nn.Module:
        decoder = CaptionDecoderRun.create_model(self, model_config)
        if self.decoder_weights is not None:
            decoder.load_state_dict(self.decoder_weights)
            self._check_decoder_fit(decoder)
        uvit = UViT(UViTConfig(**model_config["uvit"]))
        self.uni = self._assemble(uvit, decoder)  # checks the parts fit (text width, token count, ...)
        return UViTTrainNet(uvit, decoder)

    @torch.no_grad()
    def _check_decoder_fit(self, decoder) -> None:
        """Say up front when the --init-from decoder cannot reconstruct the data's captions: the U-ViT would
        learn its reduction's text tokens all the same, and every i2t caption would be noise (a short stage 1
        at the default EMA decay without --ema-warmup exports weights that barely left their initialisation)."""
        if not self.d.is_main:  # one note per run, not one per rank
            return
        captions = self.prompts(32)
        device = next(decoder.parameters()).device
        states = self.text.encode(captions).states.to(device)  # (N, L, W)
        ids = decoder.ids_of(captions, CAPTION_TOKENS).to(device)  # (N, CAPTION_TOKENS)
        nats = decoder.token_losses(decoder.encode_prefix(states), ids).mean().item()
        if nats > DECODER_FIT_NATS:
            print(f"ditkit train: note: the caption decoder from --init-from {self.config.init_from} reconstructs "
                  f"the data's captions poorly ({nats:.2f} nats per token on {len(captions)} of them; a trained one "
                  f"is well under {DECODER_FIT_NATS}): i2t captions will be noise. Train stage 1 longer, or with "
                  "--ema-warmup.", file=sys.stderr)

    def _assemble(self, uvit, decoder) -> UniDiffuser:
        channels, flow = self.dataset.channels, self.config.diffusion.process == "flow"
        return UniDiffuser(uvit, decoder, codec=self.codec,
                           text_encoder=self.text, image_encoder=make_image_encoder("pooled:4", channels=channels),
                           image_size=self.image_size,
                           process=replace(self.config.diffusion, learn_sigma=False) if flow else None,
                           text_norm=self.text_norm)

    def objective(self, diffusion):
        """Built after the weights (the decoder's, resumed ones too): ``--text-cache`` encodes every caption once."""
        table, captions = None, [self.dataset.caption(i) for i in range(len(self.dataset))]
        if self.config.text_cache:
            table = TextTokenTable.build(self.uni, captions, self.config.text_cache, self.d)
        share, flow = self.config.uni_condition_share, diffusion.family == "flow"
        if flow:  # a flow-matching U-ViT diffuses standardised text tokens (TextNorm), measured on this data
            self.text_norm = TextNorm.of_tokens(table.tokens if table is not None else
                                                TextTokenTable.build(self.uni, captions[:NORM_CAPTIONS]).tokens)
            self.uni.text_norm = self.text_norm
        inner = UniDiffuserFlowObjective(diffusion, condition_share=share) if flow else UniDiffuserObjective(
            condition_share=share)
        return UniBatchObjective(self, table, inner)

    def export(self, ema: nn.Module, folder: str, extra: dict) -> None:
        self._assemble(ema.uvit, ema.caption_decoder).save(folder, extra=extra)

    def grid_hook(self, run_dir: str, codec, config):
        return UniGridHook(run_dir, config, self)

    def eval_fn(self, config, data):
        """``--fid-every``: ``ditkit uni-eval``'s scores of the EMA model (its settings), ``--fid-samples`` items
        per mode, logged as ``uni_<mode>_<score>``: t2i and i2t attribute accuracy (mean, worst, all-correct),
        joint agreement. Defined on the captioned shapes, which the attribute classifier reads (``__init__``)."""
        from ..evaluation.attributes import load_attribute_classifier
        from ..evaluation.unidiffuser_eval import evaluate_unidiffuser

        classifier = load_attribute_classifier(device=self.device)
        headline = {"t2i": ("mean_attribute", "min_attribute", "all_correct"),
                    "i2t": ("mean_attribute", "min_attribute", "all_correct"), "joint": ("agreement",)}

        def scores(ema, step: int) -> dict[str, float]:
            model = self._assemble(ema.uvit, ema.caption_decoder)
            report = evaluate_unidiffuser(model, count=config.fid_samples, classifier=classifier, seed=config.seed)
            return {f"uni_{mode}_{key}": report[mode]["all"][key] for mode, keys in headline.items() for key in keys
                    if report[mode]["all"].get(key) is not None}

        return scores


class UniBatchObjective:
    """A UniDiffuser objective (``unidiffuser_objective.py``) on a ``{"x", "caption"}`` batch: images and
    captions → ``training_batch``."""

    def __init__(self, run: UniDiffuserRun, table: TextTokenTable | None, inner: UniDiffuserObjective):
        self.run, self.table, self.inner = run, table, inner

    def __call__(self, net, batch, generator=None):
        captions, uni = list(batch["caption"]), self.run.uni
        if self.table is None:
            uni_batch = uni.training_batch(batch["x"], captions, generator)
        else:  # the same batch, its text tokens read from the table
            uni_batch = uni.encode_images(batch["x"].float(), generator)
            uni_batch["text"] = self.table.lookup(captions).to(batch["x"].device)  # (N, T, D)
        uni_batch["text"] = uni.diffusion_text(uni_batch["text"])
        return self.inner(net, uni_batch, generator)


class UniGridHook(SampleGridHook):
    """Stage 2's progress: EMA t2i samples of the data's first captions (fixed seed), captioned."""

    def __init__(self, run_dir, config, run: UniDiffuserRun):
        super().__init__(run_dir, None, config)
        self.run = run

    def __call__(self, state) -> None:
        from ..imaging import to_uint8
        from ..pipelines.images import save_png
        from ..pipelines.text import captioned_grid

        c, prompts = self.config, self.run.prompts(self.config.sample_count)
        model = self.run._assemble(state.ema.uvit, state.ema.caption_decoder)
        out = fork_rng_around(model.generate, "t2i", prompts=prompts, steps=c.sample_steps, scale=c.sample_cfg,
                              seed=c.seed, long_prompts="truncate")  # the data's captions, cut as training cuts them
        path = os.path.join(self.run_dir, "samples", f"step-{state.step:07d}.png")
        save_png(captioned_grid(to_uint8(out.images), prompts), path)

