"""Named LWD settings (`lwd train lwd --preset NAME`); BENCHMARKS.md says what each scored."""

from lwd.methods.base import Preset

PRESETS: dict[str, Preset] = {
    "default": Preset(),
    # Task-conditioned MT10; what `lwd quickstart` trains (fits 15 minutes on 2 CPU cores). Its decoder
    # is the shared basis of `mt10-basis` (which beat the chunked `mt10` on 2 seeds and on fresh test
    # seeds, at 0.4x its FLOPs per step and 0.6x its training time; BENCHMARKS.md).
    "mt10-quick": Preset(method={"horizon": 32, "condition": "task", "vae_steps": 8000, "prior_steps": 2000,
                                 "decoder": "basis", "basis_size": 32},
                         train={"batch_size": 64, "lr": 1e-3}),
    # The chunked hypernetwork, as every MT10 table before mt10-basis measured it.
    "mt10": Preset(method={"vae_steps": 20000, "prior_steps": 4000, "decoder": "chunked"}, extends="mt10-quick"),
    # Cheaper generation: at H = 32 almost 3/4 of a generation's FLOPs were the
    # hypernetwork's 256-wide hidden layer times 22k outputs; 64 wide and a 4x smaller denoiser cut
    # a DDIM-10 generation from 36 M to 9.3 M FLOPs (lwd info). Same MLP, same training budget as `mt10`.
    "mt10-lite": Preset(method={"hyper_hidden": (64,), "denoiser_width": 128, "denoiser_blocks": 2}, extends="mt10"),
    # Cheaper generation, one change from `mt10`: the decoder writes theta from 32 coefficients of a
    # learned weight-space basis (decoder="basis") instead of a 256-wide chunked head, cutting a
    # DDIM-1 generation from 14.6 M to 3.8 M FLOPs; the prior (denoiser) is mt10's, unlike mt10-lite.
    "mt10-basis": Preset(method={"decoder": "basis", "basis_size": 32}, extends="mt10"),
    # Single-task, state-conditioned: the prior sees the last To=2 observations and the generated
    # MLP sees the last 2 as well (velocity); segments of H=16. With the default latent (64) and KL
    # weight (1e-4) the VAE's posterior collapsed on PushT (KL 7e-5 nats: one fixed MLP); kept under
    # this name for the studies measured with it and as robomimic's base.
    "pusht-kl1e-4": Preset(method={"horizon": 16, "policy_obs_steps": 2, "condition": "state", "vae_steps": 20000,
                                   "prior_steps": 6000},
                           train={"batch_size": 64, "lr": 1e-3}),
    # The PushT latent sweep's choice (benchmarks/studies/pusht-latent.toml, BENCHMARKS.md): a latent
    # of 16 at the paper's KL weight 1e-10 keeps z informative (KL ~90 nats, 16 of 16 units active)
    # and led every other setting at H <= 32 over both training seeds (success 0.83 / 0.75 at H = 8 / 16).
    "pusht": Preset(method={"latent_dim": 16, "kl_weight": 1e-10}, extends="pusht-kl1e-4"),
    "robomimic": Preset(extends="pusht-kl1e-4"),
    # PushT from camera frames (lwd demos pusht/image): pusht's LWD on step vectors [agent x, y, 64
    # features] of a frozen encoder of Diffusion Policy's image-cpu size (width 16), trained first
    # by behaviour cloning on the same demos (2000 steps of 32 frames; lwd.methods.frozen_vision),
    # on frames pooled 2x (48 px, crops of 42: 7/8 as DP's 84 of 96). The encoder runs every step,
    # and at full resolution it made the step 44.7 M FLOPs at H = 32, 1/6.6 of DP image-cpu's; pooled
    # it is 14.6 M (1/20). Chosen on cost, before any run; `pusht-image-full` keeps full resolution.
    "pusht-image": Preset(method={"image_width": 16, "image_pool": 2, "crop_shape": (42, 42)}, extends="pusht"),
    "pusht-image-full": Preset(method={"image_pool": 1, "crop_shape": (84, 84)}, extends="pusht-image"),
}
