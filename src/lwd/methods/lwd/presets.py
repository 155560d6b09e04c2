"""Named LWD settings (`lwd train lwd --preset NAME`); BENCHMARKS.md says what each scored."""

from lwd.methods.base import Preset

PRESETS: dict[str, Preset] = {
    "default": Preset(),
    # Task-conditioned MT10; what `lwd quickstart` trains (fits 15 minutes on 2 CPU cores).
    "mt10-quick": Preset(method={"horizon": 32, "condition": "task", "vae_steps": 8000, "prior_steps": 2000},
                         train={"batch_size": 64, "lr": 1e-3}),
    "mt10": Preset(method={"vae_steps": 20000, "prior_steps": 4000}, extends="mt10-quick"),
    # Cheaper generation: at H = 32 almost 3/4 of a generation's FLOPs were the
    # hypernetwork's 256-wide hidden layer times 22k outputs; 64 wide and a 4x smaller denoiser cut
    # a DDIM-10 generation from 36 M to 9.3 M FLOPs (lwd info). Same MLP, same training budget as `mt10`.
    "mt10-lite": Preset(method={"hyper_hidden": (64,), "denoiser_width": 128, "denoiser_blocks": 2}, extends="mt10"),
    # Single-task, state-conditioned: the prior sees the last To=2 observations and the generated
    # MLP sees the last 2 as well (velocity); segments of H=16.
    "pusht": Preset(method={"horizon": 16, "policy_obs_steps": 2, "condition": "state", "vae_steps": 20000, "prior_steps": 6000},
                    train={"batch_size": 64, "lr": 1e-3}),
    "robomimic": Preset(extends="pusht"),
    # PushT from camera frames (lwd demos pusht/image): pusht's LWD on step vectors [agent x, y, 64
    # features] of a frozen encoder of Diffusion Policy's image-cpu size (width 16), trained first
    # by behaviour cloning on the same demos (2000 steps of 32 frames; lwd.methods.frozen_vision).
    "pusht-image": Preset(method={"image_width": 16}, extends="pusht"),
}
