"""The image encoder of Diffusion Policy's CNN image policy, in plain torch: ResNet-18 with
GroupNorm, a spatial-softmax keypoint head and a linear layer, with random / centre crops.

What Diffusion Policy uses (real-stanford/diffusion_policy, `diffusion_unet_hybrid_image_policy.py`
with `train_diffusion_unet_hybrid_workspace.yaml`), one encoder per camera:

    frame (H, W, 3) uint8
      -> crop (ch, cw): random position in training, the centre in evaluation (`eval_fixed_crop`);
         PushT: 84 x 84 out of 96 x 96 (robomimic tasks: 76 x 76 out of 84 x 84)
      -> [0, 255] -> [-1, 1]                      DP's image range normaliser ([0, 1] -> [-1, 1])
      -> ResNet-18 without avgpool and fc          robomimic's `ResNet18Conv(pretrained=False)`;
         every BatchNorm2d(C) replaced by GroupNorm(C // 16, C)   (`obs_encoder_group_norm`: EMA
         and BatchNorm do not mix), (512, ceil(ch/32), ceil(cw/32)) features
      -> SpatialSoftmax: 1x1 conv 512 -> 32 keypoint maps, softmax over the pixels (temperature 1,
         fixed), expected (x, y) in [-1, 1] per map -> (32, 2)      robomimic's `SpatialSoftmax`
      -> flatten (64) -> Linear(64, 64)            robomimic's `VisualCore(feature_dimension=64)`

Parameters of one encoder: ResNet-18's convolutional trunk 11,176,512 (GroupNorm has the same two
affine parameters per channel as BatchNorm), spatial softmax 512 x 32 + 32 = 16,416, linear
64 x 64 + 64 = 4,160: 11,197,088 (tests/test_vision.py derives this from the layer definitions).

Why plain torch and not torchvision: torchvision does not load beside this project's CPU torch
2.13.0 (`operator torchvision::nms does not exist`); the only torchvision that does comes with
torch 2.14.1 as a 5.5 GB CUDA build, and moving every pin for it buys nothing here: the reference
trains this encoder from scratch (no pretrained weights to load), replaces every norm layer
anyway, and ResNet-18 is 18 convolutions in four stages, which fit on one screen below. The
convolutions are initialised as torchvision initialises them (Kaiming normal, fan-out, ReLU),
the norms at weight 1, bias 0, so a fresh encoder starts where the reference's does.

`width` (channels of the first stage; the reference: 64) scales every stage (w, 2w, 4w, 8w) for a
CPU-sized encoder; groups stay channels // 16, so the width must be a multiple of 16.

`pool` (not in the reference; 1 there) averages each frame over `pool` x `pool` pixel blocks before
the crop, which then applies to the smaller frame. Why: a frozen encoder that a generated MLP reads
runs at every control step, so its FLOPs are the step's; they scale with the pixels, and pooling
by 2 cuts them about 3.3x (43.3 M to 13.3 M at width 16 on PushT's 96 px frames) with the same
layers and parameters, where a narrower trunk would change the architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GROUP_SIZE = 16
"""Channels per GroupNorm group: Diffusion Policy's GroupNorm(num_features // 16, num_features)."""
STAGE_BLOCKS = (2, 2, 2, 2)
"""BasicBlocks per stage of ResNet-18."""


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(channels // GROUP_SIZE, channels)


class BasicBlock(nn.Module):
    """ResNet's two 3x3 convolutions with a residual; a strided 1x1 projection when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = group_norm(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.norm2 = group_norm(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), group_norm(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, H, W) -> (B, C_out, H / stride, W / stride)
        h = F.relu(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet18Trunk(nn.Module):
    """ResNet-18 up to its last stage (no pooling, no classifier), GroupNorm throughout.

    Stem: 7x7 conv stride 2 -> norm -> ReLU -> 3x3 max-pool stride 2; then four stages of two
    BasicBlocks at widths (w, 2w, 4w, 8w), the last three starting with stride 2: an (h, w) input
    gives (8w, ceil(h / 32), ceil(w / 32)) features.
    """

    def __init__(self, width: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        if width < GROUP_SIZE or width % GROUP_SIZE:
            raise ValueError(f"the ResNet width must be a multiple of {GROUP_SIZE} (GroupNorm groups of {GROUP_SIZE} "
                             f"channels), e.g. 64 (the reference) or 16; got {width}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False), group_norm(width), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages, ch = [], width
        for i, blocks in enumerate(STAGE_BLOCKS):
            out = width * 2**i
            stages.append(nn.Sequential(*[BasicBlock(ch if b == 0 else out, out, 2 if (b == 0 and i > 0) else 1)
                                          for b in range(blocks)]))
            ch = out
        self.stages = nn.Sequential(*stages)
        self.out_channels = ch
        for module in self.modules():  # torchvision's ResNet initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.GroupNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def feature_size(size: int) -> int:
        """Side of the feature map for an input side: 5 halvings (stem conv, max-pool, 3 strided stages)."""
        for _ in range(5):
            size = math.floor((size - 1) / 2) + 1  # kernel 3 or 7 (or 1) with matching padding, stride 2
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, h, w) -> (B, 8 * width, ceil(h / 32), ceil(w / 32))
        return self.stages(self.stem(x))


class SpatialSoftmax(nn.Module):
    """Keypoints from feature maps (Finn et al. 2016; robomimic's `SpatialSoftmax`, temperature fixed at 1).

    A 1x1 convolution makes `num_kp` maps; each is a softmax over its pixels, and the keypoint is
    the expected (x, y) under it, with x and y running over [-1, 1] across the map.
    """

    def __init__(self, in_channels: int, height: int, width: int, num_kp: int = 32, temperature: float = 1.0) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.conv = nn.Conv2d(in_channels, num_kp, 1)
        self.temperature = float(temperature)
        pos_y, pos_x = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("pos", torch.stack([pos_x.reshape(-1), pos_y.reshape(-1)], dim=-1), persistent=False)  # (h*w, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (B, C, h, w) -> keypoints (B, K, 2)
        maps = self.conv(features).flatten(2)  # (B, K, h*w)
        attention = torch.softmax(maps / self.temperature, dim=-1)
        return attention @ self.pos  # (B, K, 2)


def crop(frames: torch.Tensor, size: tuple[int, int], random: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, ch, cw): a random position per frame (`random`), else the centre.

    The centre of an odd margin rounds down, as Diffusion Policy's fixed evaluation crop does."""
    b, _, h, w = frames.shape
    ch, cw = size
    if ch > h or cw > w:
        raise ValueError(f"cannot crop {ch}x{cw} out of {h}x{w} frames; set a crop no larger than the frames "
                         f"(e.g. crop_shape=[{h * 7 // 8}, {w * 7 // 8}])")
    if not random:
        top, left = (h - ch) // 2, (w - cw) // 2
        return frames[:, :, top : top + ch, left : left + cw]
    top = torch.randint(0, h - ch + 1, (b,), generator=generator, device=generator.device if generator else "cpu")
    left = torch.randint(0, w - cw + 1, (b,), generator=generator, device=generator.device if generator else "cpu")
    top, left = top.to(frames.device), left.to(frames.device)
    rows = (top[:, None] + torch.arange(ch, device=frames.device))[:, :, None]  # (B, ch, 1)
    cols = (left[:, None] + torch.arange(cw, device=frames.device))[:, None, :]  # (B, 1, cw)
    batch = torch.arange(b, device=frames.device)[:, None, None]  # (B, 1, 1)
    return frames.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # (B, C, ch, cw)


class ImageEncoder(nn.Module):
    """One camera's frames -> features: crop, [-1, 1], ResNet-18 (GroupNorm), SpatialSoftmax, Linear.

    Input: uint8 frames (..., H, W, 3) as the episode store and the envs give them; output
    (..., feature_dim) float. Cropping is random while the module is training and central in
    eval mode, so `model.eval()` switches to the evaluation crop.
    """

    def __init__(self, frame_shape: tuple[int, int, int], crop_shape: tuple[int, int] = (84, 84), width: int = 64,
                 num_kp: int = 32, feature_dim: int = 64, pool: int = 1) -> None:
        super().__init__()
        h, w, c = frame_shape
        if c != 3:
            raise ValueError(f"ImageEncoder takes RGB frames (H, W, 3), got {frame_shape}")
        if pool < 1 or h % pool or w % pool:
            raise ValueError(f"image_pool must be >= 1 and divide the {h}x{w} frames, got {pool}")
        ph, pw = h // pool, w // pool
        if crop_shape[0] > ph or crop_shape[1] > pw or min(crop_shape) < 1:
            pooled = f" (pooled {pool}x from {h}x{w})" if pool > 1 else ""
            raise ValueError(f"crop_shape {tuple(crop_shape)} must fit in the {ph}x{pw} frames{pooled}; "
                             f"e.g. crop_shape=[{ph * 7 // 8}, {pw * 7 // 8}]")
        self.frame_shape = (h, w, c)
        self.pool = int(pool)
        self.crop_shape = (int(crop_shape[0]), int(crop_shape[1]))
        self.backbone = ResNet18Trunk(width)
        fh, fw = ResNet18Trunk.feature_size(self.crop_shape[0]), ResNet18Trunk.feature_size(self.crop_shape[1])
        self.keypoints = SpatialSoftmax(self.backbone.out_channels, fh, fw, num_kp)
        self.project = nn.Linear(2 * num_kp, feature_dim)
        self.feature_dim = feature_dim

    def forward(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # frames: (..., H, W, 3) uint8 -> (..., feature_dim)
        if tuple(frames.shape[-3:]) != self.frame_shape:
            raise ValueError(f"this encoder takes frames of {self.frame_shape}, got {tuple(frames.shape[-3:])}")
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *self.frame_shape).permute(0, 3, 1, 2)  # (N, 3, H, W)
        x = x.to(self.project.weight.dtype)
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)  # (N, 3, H / pool, W / pool)
        x = crop(x, self.crop_shape, random=self.training, generator=generator)
        x = x * (2.0 / 255.0) - 1.0  # [0, 255] -> [-1, 1]
        keypoints = self.keypoints(self.backbone(x))  # (N, K, 2)
        return self.project(keypoints.flatten(1)).reshape(*lead, self.feature_dim)  # (..., F)
