"""The image encoder (lwd.methods.vision): Diffusion Policy's ResNet-18 / GroupNorm / spatial-softmax encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lwd.flops import num_params
from lwd.methods.vision import ImageEncoder, ResNet18Trunk, SpatialSoftmax, crop


def reference_encoder_params(width: int = 64, num_kp: int = 32, feature_dim: int = 64) -> int:
    """Parameters of one camera's encoder in Diffusion Policy's hybrid image policy, derived from the
    definitions it builds on (torchvision's resnet18 as robomimic's ResNet18Conv keeps it: conv1 + bn1
    + layer1..4, no avgpool/fc; BatchNorm2d(C) -> GroupNorm(C // 16, C), both 2C affine parameters;
    robomimic's SpatialSoftmax(num_kp=32): Conv2d(512, 32, 1) with bias; VisualCore's
    Linear(2 * num_kp, feature_dimension=64)). With the reference's width 64 this is 11,197,088."""
    def conv(cin: int, cout: int, k: int, bias: bool = False) -> int:
        return cin * cout * k * k + (cout if bias else 0)

    def norm(c: int) -> int:
        return 2 * c

    total = conv(3, width, 7) + norm(width)  # stem
    cin = width
    for stage in range(4):  # two BasicBlocks per stage
        cout = width * 2**stage
        for block in range(2):
            first_in = cin if block == 0 else cout
            total += conv(first_in, cout, 3) + norm(cout) + conv(cout, cout, 3) + norm(cout)
            if block == 0 and first_in != cout:  # downsample: 1x1 conv stride 2 + norm
                total += conv(first_in, cout, 1) + norm(cout)
        cin = cout
    total += conv(cin, num_kp, 1, bias=True)  # spatial softmax keypoint maps
    total += 2 * num_kp * feature_dim + feature_dim  # VisualCore's linear layer
    return total


def test_the_encoder_has_the_reference_configs_parameter_count():
    encoder = ImageEncoder((96, 96, 3), crop_shape=(84, 84))
    assert num_params(encoder) == reference_encoder_params() == 11_197_088
    # the trunk is torchvision's resnet18 (num_params 11689512 in its model docs) less its classifier, Linear(512, 1000)
    assert num_params(encoder.backbone) == 11_689_512 - 513_000
    assert num_params(ImageEncoder((96, 96, 3), width=16)) == reference_encoder_params(width=16)
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == m.num_channels // 16 for m in norms)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in encoder.modules())


def test_an_84px_crop_gives_3x3_features_and_64_features_per_frame():
    encoder = ImageEncoder((96, 96, 3), crop_shape=(84, 84), width=16).eval()
    assert ResNet18Trunk.feature_size(84) == 3 and ResNet18Trunk.feature_size(76) == 3
    frames = torch.randint(0, 256, (2, 3, 96, 96, 3), dtype=torch.uint8)  # (B, To, H, W, 3)
    out = encoder(frames)
    assert out.shape == (2, 3, 64) and out.dtype == torch.float32
    np.testing.assert_allclose(encoder(frames[1, 2])[None].detach().numpy(), out[1, 2:3].detach().numpy(), atol=1e-5)


def test_spatial_softmax_returns_the_expected_position_of_a_peaked_map():
    head = SpatialSoftmax(in_channels=1, height=3, width=5, num_kp=1)
    with torch.no_grad():
        head.conv.weight.fill_(1.0)
        head.conv.bias.zero_()
    features = torch.full((1, 1, 3, 5), -1e4)
    features[0, 0, 2, 4] = 0.0  # bottom-right
    np.testing.assert_allclose(head(features).detach().numpy(), [[[1.0, 1.0]]], atol=1e-6)
    features = torch.zeros(1, 1, 3, 5)  # uniform: the centre
    np.testing.assert_allclose(head(features).detach().numpy(), [[[0.0, 0.0]]], atol=1e-6)


def test_crops_are_central_in_eval_and_random_per_frame_in_training():
    frames = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)
    torch.testing.assert_close(crop(frames, (4, 4), random=False), frames[:, :, 1:5, 1:5])
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(20):
        out = crop(frames, (4, 4), random=True, generator=g)
        for b in range(2):
            top, left = divmod(int(out[b, 0, 0, 0] - frames[b, 0, 0, 0]), 6)
            torch.testing.assert_close(out[b], frames[b, :, top : top + 4, left : left + 4])
            seen.add((top, left))
    assert len(seen) > 3  # the position varies
    encoder = ImageEncoder((72, 72, 3), crop_shape=(64, 64), width=16)  # 2x2 feature maps
    x = torch.randint(0, 256, (4, 72, 72, 3), dtype=torch.uint8)
    torch.manual_seed(0)
    a = encoder.train()(x)
    b = encoder.eval()(x)
    assert not torch.allclose(a, b) and torch.allclose(b, encoder.eval()(x))
    with pytest.raises(ValueError, match="must fit in the 8x8 frames"):
        ImageEncoder((8, 8, 3), crop_shape=(10, 10), width=16)
    with pytest.raises(ValueError, match="multiple of 16"):
        ImageEncoder((8, 8, 3), crop_shape=(6, 6), width=24)


def test_a_pooled_encoder_sees_what_the_same_encoder_sees_on_the_smaller_frame_at_a_third_of_the_flops():
    from lwd.flops import count_flops

    torch.manual_seed(0)
    small = torch.randint(0, 256, (3, 48, 48, 3), dtype=torch.uint8)
    big = small.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)  # every 2x2 block one colour: pooling undoes it
    pooled = ImageEncoder((96, 96, 3), crop_shape=(42, 42), width=16, pool=2).eval()
    plain = ImageEncoder((48, 48, 3), crop_shape=(42, 42), width=16).eval()
    plain.load_state_dict(pooled.state_dict())  # pooling adds no weights
    torch.testing.assert_close(pooled(big), plain(small), rtol=1e-5, atol=1e-5)
    full = ImageEncoder((96, 96, 3), crop_shape=(84, 84), width=16).eval()
    frame = torch.zeros(1, 96, 96, 3, dtype=torch.uint8)
    assert count_flops(lambda: pooled(frame)) < count_flops(lambda: full(frame)) / 3
    with pytest.raises(ValueError, match=r"must fit in the 48x48 frames \(pooled 2x from 96x96\)"):
        ImageEncoder((96, 96, 3), crop_shape=(84, 84), width=16, pool=2)
    with pytest.raises(ValueError, match="divide the 96x96 frames"):
        ImageEncoder((96, 96, 3), crop_shape=(20, 20), width=16, pool=5)
