"""UniDiffuser end to end: images and prompts in, images and captions out, in any of the seven modes.

``UniDiffuser`` bundles the U-ViT with everything around it:

- the image side: a codec (``ditkit.codecs``: SD VAE, or pixels) for the latent ``img`` and an image-semantics
  encoder (``ditkit.codecs.image_semantics``: CLIP ViT-B/32, or offline ``pooled:G``) for the ``clip_img`` token;
- the text side: a frozen text encoder (``ditkit.codecs.text``: CLIP ViT-L/14 on the hub path, MiniLM
  offline; ``chars`` for tiny models) and the caption decoder (``ditkit.models.caption_decoder``), whose learned
  ``encode_prefix`` reduces the encoder states to the 64-d text tokens and whose language model turns sampled
  text tokens back into words.

``generate(mode, ...)`` checks the inputs (a mode without its required input, an image of another size or
channel count — converted with a note — are handled here), samples with the process's sampler from the registry
(``ditkit.diffusion.unidiffuser``: the official ``dpm-solver``, or a flow sampler) and decodes; ``callback`` sees
every network evaluation. Checkpoints: our folder (``save`` / ``load``) or the official
``uvit_v1.pth`` + ``caption_decoder.pth`` (``from_official``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoints.unidiffuser import (load_official_uvit, read_caption_decoder_state, read_unidiffuser_folder,
                                       save_unidiffuser_folder)
from ..codecs import codec_from_config, make_codec
from ..codecs.image_semantics import make_image_encoder
from ..diffusion import DiffusionConfig
from ..diffusion.unidiffuser import GENERATES, MODES, OFFICIAL_SAMPLER, make_draw, unidiffuser_sample
from ..errors import DitkitError
from ..models.caption_decoder import GPT2PrefixDecoder, PrefixDecoder, WordPrefixDecoder
from ..models.uvit import UViT, UViTConfig, load_uvit_state_dict
from ..precision import SAMPLING_PRECISIONS, in_precision

__all__ = ["UniDiffuser", "UniOutput", "TextNorm", "make_text_encoder", "MODE_INPUTS", "DEFAULT_SAMPLING"]

# What each mode takes from the user: "prompts", "images" or nothing (n samples from scratch).
MODE_INPUTS = {"t2i": "prompts", "t2i2t": "prompts", "i2t": "images", "i2t2i": "images", "joint": None, "i": None,
               "t": None}


# How a UniDiffuser samples when neither the call nor its checkpoint says: the official sampler (50 DPM-Solver
# steps, scale 7) on the official process; Heun 10 steps (19 evaluations) on a flow-matching one, at a scale the
# bundled mnist-uni measured (docs/unidiffuser.md). A checkpoint's ``sampling`` record comes first.
DEFAULT_SAMPLING = {"vp": {"sampler": OFFICIAL_SAMPLER, "steps": 50, "scale": 7.0},
                    "flow": {"sampler": "heun", "steps": 10, "scale": 3.0}}


def make_text_encoder(spec, **kwargs):
    """``chars`` (weightless, for tiny models), else ``ditkit.codecs.text.make_text_codec`` (minilm, clip, ...)."""
    spec_name = spec.get("spec") if isinstance(spec, dict) else spec
    if spec_name == "chars":
        from ..codecs.char_text import CharTextCodec

        max_length = spec.get("max_length", 32) if isinstance(spec, dict) else kwargs.get("max_length") or 32
        return CharTextCodec(max_length, device=kwargs.get("device", "cpu"))
    from ..codecs.text import make_text_codec

    return make_text_codec(spec, **kwargs)


def _decoder_from_config(config: dict) -> PrefixDecoder:
    kind = config.get("type")
    if kind == "words":
        return WordPrefixDecoder(config["vocab"], **{k: v for k, v in config.items() if k not in ("type", "vocab")})
    if kind == "gpt2":
        return GPT2PrefixDecoder({k: tuple(v) for k, v in config["shapes"].items()})
    raise DitkitError(f"unknown caption decoder type {kind!r} in the checkpoint (expected 'words' or 'gpt2').")


def _decoder_config(decoder: PrefixDecoder) -> dict:
    if isinstance(decoder, WordPrefixDecoder):
        return decoder.to_config()
    return {"type": "gpt2", "shapes": {k: list(v.shape) for k, v in decoder.state_dict().items()}}


class TextNorm(nn.Module):
    """Text tokens standardised for the diffusion: z = (x − shift)/scale, ``shift`` (T, D) the data's mean tokens
    and ``scale`` the std about them. The captions' tokens differ little from their mean (MiniLM's through the
    64-d reduction: std 0.18 about a 0.45 mean on MNIST's), so unnormalised they drown in noise early in the
    process. A flow-matching UniDiffuser trains and samples in z (the official model has none)."""

    def __init__(self, shift: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("shift", shift.float().clone())  # (T, D)
        self.register_buffer("scale", scale.float().reshape(()).clone())  # ()

    @classmethod
    def of_tokens(cls, tokens: torch.Tensor) -> "TextNorm":
        """From the data's text tokens (N, T, D), each distinct caption once."""
        shift = tokens.float().mean(0)  # (T, D)
        return cls(shift, (tokens.float() - shift).std().clamp(min=1e-6))

    def to_config(self) -> dict:
        return {"scale": float(self.scale), "shift": self.shift.tolist()}

    @classmethod
    def from_config(cls, config: dict, uvit_config, source: str) -> "TextNorm":
        try:
            shift, scale = torch.tensor(config["shift"], dtype=torch.float32), float(config["scale"])
        except (KeyError, TypeError, ValueError):
            shift, scale = None, float("nan")
        if shift is None or tuple(shift.shape) != (uvit_config.num_text_tokens, uvit_config.text_dim) \
                or not (torch.isfinite(shift).all() and 0 < scale < float("inf")):
            raise DitkitError(f"{source}: the config's text_norm does not fit the U-ViT's text tokens "
                              f"({uvit_config.num_text_tokens}x{uvit_config.text_dim}, a finite shift and scale > 0).")
        return cls(shift, torch.tensor(scale))

    def normalize(self, text: torch.Tensor) -> torch.Tensor:
        return (text - self.shift.to(text)) / self.scale.to(text)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale.to(z) + self.shift.to(z)


@dataclass
class UniOutput:
    """What a mode produced: images (N,C,H,W) in [-1,1] and/or captions, the raw latents, and notes on inputs."""

    mode: str
    images: torch.Tensor | None = None
    captions: list[str] | None = None
    latents: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class UniDiffuser(nn.Module):
    """The U-ViT, its caption decoder (learned), and the frozen codec / text and image encoders around them."""

    def __init__(self, uvit: UViT, caption_decoder: PrefixDecoder, *, codec, text_encoder, image_encoder,
                 image_size: int, process: DiffusionConfig | None = None, sampling: dict | None = None,
                 text_norm: TextNorm | None = None):
        super().__init__()
        self.text_norm = text_norm  # None: the diffusion sees the text tokens as they are (the official model)
        self.uvit, self.caption_decoder = uvit, caption_decoder
        self.codec, self.text_encoder, self.image_encoder = codec, text_encoder, image_encoder
        self.image_size = int(image_size)
        self.process = process  # None: the official VP schedule; a flow DiffusionConfig: flow matching
        self.sampling = dict(sampling or {})  # the sampler, steps and scale it samples best with (recorded)
        self._check_parts()

    @property
    def family(self) -> str:
        return "flow" if self.process is not None and self.process.process == "flow" else "vp"

    def sampling_settings(self, sampler: str | None = None, steps: int | None = None,
                          scale: float | None = None) -> dict:
        """What a call samples with: the given values, else the checkpoint's record, else the process's default."""
        recorded = {**DEFAULT_SAMPLING[self.family], **self.sampling}
        if sampler is not None and sampler != recorded["sampler"]:  # another sampler: its own default steps
            recorded = {**recorded, "sampler": sampler, "steps": _default_steps(sampler, self.family)}
        given = {"sampler": sampler, "steps": steps, "scale": scale}
        return {k: recorded[k] if given[k] is None else given[k] for k in ("sampler", "steps", "scale")}

    def _check_parts(self) -> None:
        c, problems = self.uvit.config, []
        latent = self.codec.latent_size(self.image_size)
        if (c.in_chans, c.img_size) != (self.codec.latent_channels, latent):
            problems.append(f"the codec gives {self.codec.latent_channels}x{latent}x{latent} latents but the U-ViT "
                            f"takes {c.in_chans} channels at {c.img_size}x{c.img_size}")
        if c.num_text_tokens != self.text_encoder.max_length:
            problems.append(f"the text encoder gives {self.text_encoder.max_length} tokens, the U-ViT takes "
                            f"{c.num_text_tokens}")
        if self.caption_decoder.encode_prefix.in_features != self.text_encoder.width:
            problems.append(f"the caption decoder's prefix takes {self.caption_decoder.encode_prefix.in_features}-d "
                            f"text states, the text encoder gives {self.text_encoder.width}-d")
        if self.caption_decoder.text_dim != c.text_dim:
            problems.append(f"the caption decoder's prefix width is {self.caption_decoder.text_dim}, the U-ViT's text "
                            f"width {c.text_dim}")
        if self.image_encoder.dim != c.clip_img_dim:
            problems.append(f"the image encoder gives {self.image_encoder.dim}-d vectors, the U-ViT takes "
                            f"{c.clip_img_dim}")
        if problems:
            raise DitkitError("the UniDiffuser parts do not fit together: " + "; ".join(problems) + ".")

    # ---- building, saving, loading ----------------------------------------------------------------

    @classmethod
    def build(cls, *, image_size: int, codec="none", image_channels: int = 3, text_encoder="chars",
              image_encoder="pooled:4", uvit: dict | None = None, vocab=None, decoder: dict | None = None,
              seed: int = 0, process: DiffusionConfig | None = None) -> "UniDiffuser":
        """A freshly initialised model whose U-ViT and decoder sizes fit the chosen encoders and codec."""
        torch.manual_seed(seed)
        codec = make_codec(codec, image_channels=image_channels)
        text = make_text_encoder(text_encoder)
        images = make_image_encoder(image_encoder, channels=image_channels)
        fitted = dict(img_size=codec.latent_size(image_size), in_chans=codec.latent_channels,
                      num_text_tokens=text.max_length, clip_img_dim=images.dim)
        net = UViT(UViTConfig.from_dict({**UViTConfig().to_dict(), **(uvit or {}), **fitted}))
        words = WordPrefixDecoder(list(vocab or ("<pad>", "<eos>", "<unk>")), text_width=text.width,
                                  text_dim=net.config.text_dim, **(decoder or {}))
        return cls(net, words, codec=codec, text_encoder=text, image_encoder=images, image_size=image_size,
                   process=process)

    def config_dict(self) -> dict:
        config = {"uvit": self.uvit.config.to_dict(), "image_size": self.image_size, "codec": self.codec.to_config(),
                  "text_encoder": self.text_encoder.to_config(), "image_encoder": self.image_encoder.to_config(),
                  "caption_decoder": _decoder_config(self.caption_decoder)}
        if self.process is not None:  # an official-process model's config stays as it always was
            config["process"] = self.process.to_dict()
        if self.sampling:
            config["sampling"] = dict(self.sampling)
        if self.text_norm is not None:  # in the config: the weights file holds what training updates
            config["text_norm"] = self.text_norm.to_config()
        return config

    def save(self, path, *, extra: dict | None = None) -> Path:
        tensors = {f"uvit.{k}": v for k, v in self.uvit.state_dict().items()}
        tensors.update({f"caption_decoder.{k}": v for k, v in self.caption_decoder.state_dict().items()})
        return save_unidiffuser_folder(path, {**self.config_dict(), "extra": dict(extra or {})}, tensors)

    @classmethod
    def load(cls, path, *, device="cpu") -> "UniDiffuser":
        config, tensors = read_unidiffuser_folder(path)
        try:
            net = UViT(UViTConfig.from_dict(config["uvit"]))
            decoder = _decoder_from_config(config["caption_decoder"])
            channels = config["codec"].get("channels", 3) if config["codec"].get("type") == "pixel" else 3
            parts = dict(codec=codec_from_config(config["codec"]).to(device),
                         text_encoder=make_text_encoder(config["text_encoder"], device=device),
                         image_encoder=make_image_encoder(config["image_encoder"], channels=channels, device=device),
                         image_size=config["image_size"], sampling=config.get("sampling"),
                         process=DiffusionConfig.from_dict(config["process"]) if config.get("process") else None)
        except KeyError as exc:
            raise DitkitError(f"{path}: the UniDiffuser config lacks {exc.args[0]!r}.") from None
        load_uvit_state_dict(net, _part(tensors, "uvit."), source=str(path))
        _load_decoder(decoder, _part(tensors, "caption_decoder."), str(path))
        if config.get("text_norm") is not None:
            parts["text_norm"] = TextNorm.from_config(config["text_norm"], net.config, str(path))
        return cls(net, decoder, **parts).to(device).eval()

    @classmethod
    def from_official(cls, uvit_path, caption_decoder_path, *, vae="stabilityai/sd-vae-ft-mse", text_encoder="clip",
                      image_encoder="clip", image_size: int = 512, num_heads: int | None = None,
                      device="cpu") -> "UniDiffuser":
        """The released v1: ``uvit_v1.pth`` (config from its shapes) and ``caption_decoder.pth`` (GPT-2 prefix)."""
        net = load_official_uvit(uvit_path, num_heads=num_heads)
        state = read_caption_decoder_state(caption_decoder_path, net.config.text_dim)
        decoder = GPT2PrefixDecoder({k: tuple(v.shape) for k, v in state.items()})
        _load_decoder(decoder, state, str(caption_decoder_path))
        return cls(net, decoder, codec=make_codec(vae).to(device), text_encoder=make_text_encoder(text_encoder,
                   device=device), image_encoder=make_image_encoder(image_encoder, device=device),
                   image_size=image_size).to(device).eval()

    # ---- modalities ---------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.uvit.pos_embed.device

    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → text tokens (B, T, text_dim): frozen encoder states through the learned encode_prefix."""
        states = self.text_encoder.encode(list(prompts)).states.to(self.device)  # (B, T, width)
        return self.caption_decoder.encode_prefix(states)  # (B, T, text_dim)

    def diffusion_text(self, text: torch.Tensor) -> torch.Tensor:
        """Text tokens (B, T, text_dim) as the U-ViT trains and samples them (``TextNorm``, if the model has one)."""
        return text if self.text_norm is None else self.text_norm.normalize(text)

    def check_prompt_lengths(self, prompts: list[str]) -> None:
        """A prompt the text encoder would cut short is an error here, not a silently different prompt."""
        limit = self.text_encoder.max_length
        long = [(p, n) for p, n in zip(prompts, self.text_encoder.token_counts(prompts)) if n > limit]
        if long:
            prompt, n = long[0]
            raise DitkitError(f"the prompt {prompt[:40] + ('…' if len(prompt) > 40 else '')!r} is {n} tokens long; "
                              f"this model's text encoder reads at most {limit}: shorten it.")

    def prepare_images(self, images: torch.Tensor, notes: list[str]) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] → the model's channels and square size; every conversion leaves a note."""
        if images.ndim == 3:
            images = images[None]
        want = self.codec.image_channels
        if images.ndim != 4:
            raise DitkitError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
        if images.shape[1] != want:
            if (images.shape[1], want) == (1, 3):
                images = images.expand(-1, 3, -1, -1)
            elif (images.shape[1], want) == (3, 1):
                images = (images * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)).sum(
                    1, keepdim=True)
            else:
                raise DitkitError(f"the model takes {want}-channel images; {images.shape[1]} channels cannot be "
                                  "converted.")
            notes.append(f"converted {images.shape[0]} image(s) to {want} channel(s)")
        h, w = images.shape[-2:]
        if (h, w) != (self.image_size, self.image_size):
            side = min(h, w)  # centre-crop to a square, then resize: the model's positions are square
            top, left = (h - side) // 2, (w - side) // 2
            images = images[..., top:top + side, left:left + side]
            images = F.interpolate(images.float(), size=(self.image_size,) * 2, mode="bilinear", antialias=True,
                                   align_corners=False).clamp(-1, 1)
            notes.append(f"resized {h}x{w} input image(s) to {self.image_size}x{self.image_size}")
        return images.float().to(self.device)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, generator=None) -> dict:
        return {"img": self.codec.encode(images, generator=generator),  # (B, C, h, w)
                "clip_img": self.image_encoder.encode(images).to(self.device)}  # (B, 1, Dc)

    @torch.no_grad()
    def decode_images(self, latents: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latents).clamp(-1, 1)

    @torch.no_grad()
    def decode_text(self, text: torch.Tensor, beam_size: int = 5) -> list[str]:
        return self.caption_decoder.generate(text, beam_size=beam_size)

    @torch.no_grad()
    def training_batch(self, images: torch.Tensor, captions: list[str], generator=None) -> dict:
        """Images (N,C,H,W) in [-1,1] and their captions → the batch ``UniDiffuserObjective`` trains on. The
        codec, encoders and ``encode_prefix`` are frozen here (the reduction is trained with the caption decoder
        first, as the official model's)."""
        if len(captions) != images.shape[0]:
            raise DitkitError(f"got {images.shape[0]} images but {len(captions)} captions.")
        batch = self.encode_images(images.float().to(self.device), generator)
        batch["text"] = self.encode_prompts(captions)  # (N, T, text_dim)
        return batch

    # ---- generation ---------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, mode: str, *, n: int | None = None, prompts=None, images=None, steps: int | None = None,
                 scale: float | None = None, seed: int = 0, draw=None, beam_size: int = 5, callback=None,
                 sampler: str | None = None, long_prompts: str = "error", precision: str = "fp32",
                 batch_size: int | None = None) -> UniOutput:
        """Run one mode. t2i/t2i2t take ``prompts``, i2t/i2t2i ``images`` ((N,C,H,W) in [-1,1]), each repeated
        ``n`` times (default once); joint, i and t draw ``n`` samples. ``sampler``/``steps``/``scale`` left out
        are the checkpoint's recorded ones (``sampling_settings``). A prompt longer than the text encoder reads
        is an error, or with ``long_prompts="truncate"`` cut as training cut the data's captions (evaluation).
        ``precision``: the U-ViT's arithmetic (fp32, bf16 autocast, or auto: bf16 where the hardware does it
        natively); the sampler's stays fp32. ``batch_size``: the most samples per sampling pass; more are drawn
        in passes, pass k with seed + k (None: one pass, seed itself)."""
        if mode not in MODES:
            raise DitkitError(f"unknown UniDiffuser mode {mode!r}; expected one of {', '.join(MODES)}.")
        if batch_size is not None and int(batch_size) < 1:
            raise DitkitError(f"the batch size must be at least 1, got {batch_size}.")
        if precision not in SAMPLING_PRECISIONS:
            raise DitkitError(f"unknown sampling precision {precision!r}; choose {', '.join(SAMPLING_PRECISIONS)}.")
        settings = self.sampling_settings(sampler, steps, scale)
        out = UniOutput(mode)
        cond, n = self._conditions(mode, n, prompts, images, seed, out.notes, long_prompts)
        network = in_precision(self.uvit, precision, self.device)
        size = n if batch_size is None else int(batch_size)
        passes = []
        for k, start in enumerate(range(0, n, size)):
            part = {key: value[start:start + size] for key, value in cond.items()}
            generator = torch.Generator().manual_seed(int(seed) + k)
            passes.append(unidiffuser_sample(network, mode, min(size, n - start), cond=part, steps=settings["steps"],
                                             scale=settings["scale"], draw=draw or make_draw(generator=generator),
                                             device=self.device, callback=callback, process=self.process,
                                             sampler=settings["sampler"]))
        latents = {key: torch.cat([p[key] for p in passes]) for key in passes[0]}
        if "text" in latents and self.text_norm is not None:
            latents["text"] = self.text_norm.denormalize(latents["text"])  # the decoder reads raw text tokens
        out.latents = latents
        makes = set(GENERATES.get(mode, ())) | {"i2t2i": {"img"}, "t2i2t": {"text"}}.get(mode, set())
        if "img" in makes:
            out.images = self.decode_images(latents["img"]).cpu()
        if "text" in makes:
            out.captions = self.decode_text(latents["text"], beam_size)
        return out

    def _conditions(self, mode, n, prompts, images, seed, notes, long_prompts="error") -> tuple[dict, int]:
        needs = MODE_INPUTS[mode]
        given = {"prompts": prompts is not None, "images": images is not None}
        if needs and not given[needs]:
            raise DitkitError(f"mode {mode} needs {needs} (e.g. --{'prompt' if needs == 'prompts' else 'image'}).")
        extra = [k for k, v in given.items() if v and k != needs]
        if extra:
            raise DitkitError(f"mode {mode} takes no {extra[0]}.")
        if needs is None:
            if n is None or n < 1:
                raise DitkitError(f"mode {mode} needs a number of samples n >= 1.")
            return {}, int(n)
        if needs == "prompts":
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            prompts = [p for p in prompts for _ in range(int(n or 1))]  # each prompt n times, in order
            if not prompts:
                raise DitkitError(f"mode {mode} needs at least one prompt.")
            if long_prompts != "truncate":
                self.check_prompt_lengths(prompts)
            return {"text": self.diffusion_text(self.encode_prompts(prompts))}, len(prompts)
        images = self.prepare_images(torch.as_tensor(images), notes)
        images = images.repeat_interleave(int(n or 1), dim=0)  # each image n times, in order
        return self.encode_images(images, torch.Generator().manual_seed(int(seed) + 1)), images.shape[0]


def _default_steps(sampler: str, family: str) -> int:
    from ..diffusion.registry import get_sampler

    return get_sampler(sampler).steps_for(family)


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _load_decoder(decoder: nn.Module, state: dict, source: str) -> None:
    expected = {k: tuple(v.shape) for k, v in decoder.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if expected != got:
        wrong = sorted(set(expected) ^ set(got)) or [k for k in expected if expected[k] != got[k]]
        raise DitkitError(f"{source}: the caption decoder weights do not fit its config (e.g. {wrong[0]}).")
    decoder.load_state_dict(state, strict=True)
