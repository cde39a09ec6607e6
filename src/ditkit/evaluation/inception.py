"""The FID InceptionV3 in plain PyTorch, loading the standard ``pt_inception-2015-12-05`` weights.

FID, sFID and Inception Score are defined with TensorFlow's 2015 Inception graph. pytorch-fid
converted that graph's weights to PyTorch (``pt_inception-2015-12-05-6726825d.pth``); this module
defines the network with the same parameter names so that file loads as is. It differs from the
ImageNet InceptionV3 of torchvision in the ways the TF graph does: 1008 logits, average pools that
exclude padding, and a max pool in the last block's pool branch. (torchvision cannot be used here,
so the network is written out; the layer layout is the published InceptionV3.)

Outputs per image (input: RGB in [0, 1], any size; resized to 299×299 bilinearly):
- ``pool``: the 2048-d pool3 features (FID, precision/recall);
- ``logits``: the 1008 logits without the fc bias, as the Inception Score is defined (improved-GAN, ADM);
- ``spatial``: the first 7 channels of ``mixed_6/conv`` (the 1×1 branch of Mixed_6d, 17×17),
  flattened to 2023-d — ADM's features for sFID.

Numbers are close to, not bit-identical with, ADM's TensorFlow suite: TF1's bilinear resize samples
pixel corners where PyTorch samples centres (the same caveat as pytorch-fid).

Real weights: ``load_fid_inception(path)``; without a path the file is looked up in the cache
(``$DITKIT_CACHE`` or ``~/.cache/ditkit``, under ``inception/``) and downloaded there from
``FID_WEIGHTS_URL`` when online, checked against the SHA-256 prefix in its name.
"""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DitkitError

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)
FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
SPATIAL_CHANNELS = 7


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm (eps 1e-3, as in the TF graph) → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
    # The TF graph averages only over real pixels at the border (count_include_pad=False).
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):  # Mixed_5b/5c/5d (TF: mixed, mixed_1, mixed_2)
    def __init__(self, in_ch: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):  # Mixed_6a (grid reduction 35 → 17)
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, b3d, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):  # Mixed_6b..6e (TF: mixed_4..mixed_7), factorised 7×7 convolutions
    def __init__(self, in_ch: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b7, b7d, bp], 1)


class InceptionD(nn.Module):  # Mixed_7a (grid reduction 17 → 8)
    def __init__(self, in_ch: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):  # Mixed_7b / 7c (TF: mixed_9, mixed_10), expanded filter banks
    def __init__(self, in_ch: int, max_pool_branch: bool):
        super().__init__()
        # The TF graph's last block pools its pool branch with a max pool, the one before with an average.
        self.max_pool_branch = max_pool_branch
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool_branch else _avg_pool(x)
        return torch.cat([b1, b3, b3d, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """InceptionV3 as in TF's 2015 FID graph; ``forward`` returns pool / logits / spatial features."""

    input_size = 299

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool_branch=False)
        self.Mixed_7c = InceptionE(2048, max_pool_branch=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``images``: (N, 3, H, W) RGB in [0, 1]."""
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = 2.0 * x - 1.0  # the graph's (x - 128) / 128 on 0..255 pixels
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))
        # ADM's sFID reads TF's "mixed_6/conv": the 1×1 branch of this block, first 7 channels.
        spatial = self.Mixed_6d.branch1x1(x)[:, :SPATIAL_CHANNELS]
        x = self.Mixed_6e(self.Mixed_6d(x))
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)
        # ADM and pytorch-fid flatten the TF NHWC layout; channel-last order keeps sFID comparable.
        spatial = spatial.permute(0, 2, 3, 1).flatten(1)
        # Inception Score as defined (improved-GAN, ADM) multiplies pool3 by the softmax layer's weight
        # matrix without its bias: the "unbiased" logits.
        logits = F.linear(pool, self.fc.weight)
        return {"pool": pool, "logits": logits, "spatial": spatial}


def cache_dir() -> str:
    """ditkit's download / statistics cache: ``$DITKIT_CACHE`` or ``~/.cache/ditkit``."""
    from ..checkpoints import default_cache_dir

    return str(default_cache_dir())


def _download(url: str, dest: str) -> None:
    """Fetch ``url`` to ``dest`` with the project's one downloader, checking the SHA-256 prefix in the file
    name (torch.hub convention, which the pytorch-fid release follows)."""
    from ..checkpoints import download_file

    expected_prefix = os.path.basename(dest).rsplit("-", 1)[-1].split(".")[0]

    def verify(tmp) -> None:
        digest = hashlib.sha256()
        with open(tmp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if not digest.hexdigest().startswith(expected_prefix):
            raise DitkitError(f"the Inception weights downloaded from {url} fail their checksum; try again")

    download_file(url, dest, verify=verify, progress=True)


def resolve_inception_weights(path: str | None = None, download: bool = True) -> str:
    """Where the FID Inception weights are: ``path``, else the cache, else downloaded into the cache."""
    if path:
        if not os.path.isfile(path):
            raise DitkitError(f"Inception weights file not found: {path}")
        return path
    cached = os.path.join(cache_dir(), "inception", FID_WEIGHTS_FILE)
    if not os.path.isfile(cached):
        if not download:
            raise DitkitError(f"FID Inception weights not found in {os.path.dirname(cached)}; pass --inception-weights PATH")
        try:
            _download(FID_WEIGHTS_URL, cached)
        except DitkitError as exc:
            raise DitkitError(f"FID Inception weights: {exc} Pass --inception-weights PATH (the .pth file), "
                              "or use --extractor classifier:mnist / classifier:shapes offline.") from None
    return cached


def load_fid_inception(path: str | None = None, download: bool = True) -> FIDInceptionV3:
    """An eval-mode ``FIDInceptionV3`` with the pytorch-fid weights (a plain state dict, read safely)."""
    path = resolve_inception_weights(path, download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / not a torch file / a pickle with arbitrary objects
        raise DitkitError(f"cannot read Inception weights {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise DitkitError(f"Inception weights {path} are not a state dict")
    with torch.device("meta"):  # no point drawing 24M random numbers that are overwritten next
        model = FIDInceptionV3()
    own = model.state_dict()
    # The converted TF weights carry no BatchNorm step counters; everything else must match exactly.
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        first = (missing or unexpected or wrong)[0]
        raise DitkitError(
            f"{path} is not an FID InceptionV3 state dict ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong)} mis-shaped keys, e.g. '{first}')"
        )
    full = {k: state[k].float() if k in state else torch.zeros((), dtype=torch.long) for k in own}
    model.load_state_dict(full, strict=True, assign=True)
    return model.eval().requires_grad_(False)
