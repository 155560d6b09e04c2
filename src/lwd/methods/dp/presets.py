"""Named Diffusion Policy settings (`lwd train dp --preset NAME`).

"default"/"paper": the reference low-dim config (U-Net (256, 512, 1024), ~66M params, DDPM 100/100
steps) with its optimiser settings; the reference trains for a number of epochs, we fix the step
count. "cpu"/"mt10": a 16x smaller U-Net (~4.6-4.9M params) with the same diffusion settings
(still DDPM, 100 inference steps) and batch 64, ~0.15 s per step on one CPU thread.

For data with camera frames (e.g. `lwd demos pusht/image`): "image-paper" is the reference PushT
image config (`train_diffusion_unet_hybrid_workspace.yaml` with `crop_shape: [84, 84]`: U-Net
(512, 1024, 2048), step embedding 128, one ResNet-18 (GroupNorm) + spatial-softmax encoder per
camera, batch 64, the same optimiser); "image-cpu" keeps its structure at a size one CPU thread
can train: U-Net (64, 128, 256) and encoders of width 16 (stages 16-128 channels), batch 16.
"""

from lwd.methods.base import Preset

REFERENCE_OPTIMISER = {"batch_size": 256, "lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6,
                       "warmup_steps": 500, "ema_power": 0.75, "ema_max_decay": 0.9999}

PRESETS: dict[str, Preset] = {
    "default": Preset(train=REFERENCE_OPTIMISER),
    "paper": Preset(method={"steps": 100000}, extends="default"),
    "cpu": Preset(method={"down_dims": (64, 128, 256), "diffusion_step_embed_dim": 128, "steps": 5000},
                  train={"batch_size": 64}, extends="default"),
    "mt10": Preset(method={"steps": 8000}, extends="cpu"),
    "image-paper": Preset(method={"down_dims": (512, 1024, 2048), "diffusion_step_embed_dim": 128, "crop_shape": (84, 84),
                                  "steps": 100000},
                          train={"batch_size": 64}, extends="default"),
    "image-cpu": Preset(method={"down_dims": (64, 128, 256), "diffusion_step_embed_dim": 128, "image_width": 16,
                                "steps": 3000},
                        train={"batch_size": 16}, extends="default"),
}
