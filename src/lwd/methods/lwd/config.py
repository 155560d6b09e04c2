"""Settings of Latent Weight Diffusion (saved in config.json as "method_config")."""

from __future__ import annotations

from dataclasses import dataclass, field

from lwd.config import ADDED_LATER, added_with_new_default, check_positive
from lwd.methods.frozen_vision import check_image_settings


@dataclass(frozen=True)
class LWDConfig:
    """Latent Weight Diffusion: VAE with a hypernetwork decoder, then a latent diffusion prior.

    Timeline of one segment (To = obs_steps, H = horizon), anchored at step t:

        obs:      |t-1| t |                     condition of the prior (state-conditioned)
        segment:      | t | t+1 | ... | t+H-1|  (state, action) pairs the encoder sees and the
                                                 decoded policy must reproduce; at run time the
                                                 policy is regenerated every H steps
    """

    horizon: int = 32
    obs_steps: int = 2
    condition: str = "task"
    """'task' (task id only), 'state' (observation history) or 'task+state'."""
    latent_dim: int = 64
    """Size of z. More dimensions give the posterior room to tell segments apart; dimensions the
    data does not need collapse to the prior (see the latent diagnostics: active units)."""
    kl_weight: float = 1e-4
    """beta of beta * KL(q(z | segment) || N(0, I)). Large enough and the decoder learns to ignore z
    (posterior collapse: every generated policy the same); the paper's is about 1e-10."""
    kl_warmup_steps: int = field(default=0, metadata=ADDED_LATER)
    """VAE steps over which the KL weight ramps linearly from 0 to kl_weight (0: no warm-up). Early
    in training the decoder can only lower its loss by reading z, so it learns to before the KL
    term starts pulling the posterior toward the prior (Bowman et al. 2016)."""
    free_bits: float = field(default=0.0, metadata=ADDED_LATER)
    """Per-dimension KL floor in nats (0: off): a latent dimension whose batch-mean KL is below this
    costs nothing more, so the KL term cannot push it all the way to the prior (Kingma et al. 2016).
    Logged KL stays the true KL."""
    policy_hidden: tuple[int, ...] = (128, 128)
    policy_activation: str = "relu"
    policy_obs_steps: int = 1
    """Observations the generated MLP sees at each step, stacked oldest first (<= obs_steps).
    1: pi(s_t); 2: pi(s_{t-1}, s_t), which carries velocity (PushT's PD-driven agent lags its
    target, so where it is heading is not in one observation)."""
    chunk_size: int = 2048
    chunk_emb_dim: int = 64
    hyper_hidden: tuple[int, ...] = (256,)
    decoder: str = field(default="chunked", metadata=ADDED_LATER)
    """How z becomes theta: 'chunked' (von Oswald et al.'s chunked hypernetwork, ~2 x hyper_hidden[-1]
    x P FLOPs per policy) or 'basis' (an MLP maps z to basis_size coefficients of a learned basis of
    weight space: 2 x basis_size x P FLOPs; lwd.methods.lwd.hypernet). 'basis' is the cheaper
    generator for per-step budgets where the decoder dominates (MT10 at H <= 32)."""
    basis_size: int = field(default=32, metadata=ADDED_LATER)
    """With decoder='basis': directions of the weight-space basis (the generated policies' subspace)."""
    encoder_dim: int = 64
    encoder_layers: int = 1
    encoder_heads: int = 4
    denoiser_width: int = 256
    denoiser_blocks: int = 4
    diffusion_train_steps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    sampler: str = "ddim"
    inference_steps: int = 10
    ddim_eta: float = field(default=1.0, metadata=added_with_new_default(0.0))
    """Noise of the DDIM sampler's steps: 0 is deterministic DDIM, 1 a stochastic step with DDPM's
    variance at DDIM's stride. With 0 an imperfect denoiser's errors are never corrected: trained on
    latents in two clusters under one condition (prior_lr 3e-4), deterministic DDIM-10 put 14% of
    its samples between them and 30% outside both, where a stochastic chain of the same length kept
    96.4% inside (BENCHMARKS.md, the two-cluster check). Runs saved before this setting existed
    sampled with 0 and keep doing so."""
    clip_sample_range: float = 3.0
    """Clip the predicted clean latent to +-this many standard deviations while sampling (0: off)."""
    vae_steps: int = 3000
    prior_steps: int = 3000
    prior_lr: float = 1e-3
    """Peak learning rate of the prior stage. 3e-4 (the default until 2026-12-07) left the prior
    under-trained at the default budget: on two latent clusters under one condition its DDIM-10
    samples landed 96.4% inside the clusters, against 99.1% at 1e-3 (BENCHMARKS.md, the two-cluster check)."""
    prior_batch_size: int = 256
    segment_starts: str = "any"
    """'any': segments start at every step; 'episode': only at episode starts, so each latent
    describes a whole demonstration (with horizon >= episode length: a policy for the episode)."""
    latent_stride: int = 1
    """Use every k-th segment start when encoding latents for the prior (speed on big datasets)."""
    style_condition: bool = field(default=False, metadata=ADDED_LATER)
    """Also condition the prior on the expert style of each segment (its first step's per-step "style"
    id, from demos made with `lwd demos SUITE --styles ...`), so that a style can be asked for at run
    time (`style=NAME`, classifier-free guidance; `lwd.methods.lwd.style`). The VAE is unchanged;
    without a style asked for, the prior samples unconditionally, as a run without this does."""
    style_dropout: float = field(default=0.15, metadata=ADDED_LATER)
    """With style_condition: the share of prior training examples whose style is replaced by the
    'no style' token, which is how one denoiser also learns the unconditional prior that sampling
    without a style, and guidance, need (classifier-free guidance, Ho & Salimans 2022: 0.1-0.2)."""
    # Camera frames (used only when the training data has them; lwd.methods.frozen_vision): a frozen
    # encoder turns each frame into features, and the step vector [obs, features] replaces obs.
    encoder_from: str = field(default="", metadata=ADDED_LATER)
    """Where the frozen image encoder comes from: "" trains it in this run first, by behaviour cloning
    on the same demos (stage "encoder"); a run directory (a trained image run, e.g. dp --preset
    image-cpu) lends its camera encoders; a .safetensors file holds your own (ImageEncoder's layout)."""
    encoder_steps: int = field(default=2000, metadata=ADDED_LATER)
    """Steps of the "encoder" stage (only when encoder_from is "")."""
    encoder_batch_size: int = field(default=32, metadata=ADDED_LATER)
    """Frames per step of the "encoder" stage."""
    encoder_lr: float = field(default=3e-4, metadata=ADDED_LATER)
    """Peak learning rate of the "encoder" stage."""
    crop_shape: tuple[int, int] = field(default=(84, 84), metadata=ADDED_LATER)
    """Crop of every frame before the encoder (random while the encoder trains, central after): as
    Diffusion Policy's, 84 x 84 of PushT's 96 px frames."""
    image_width: int = field(default=64, metadata=ADDED_LATER)
    """Channels of the encoder's first ResNet-18 stage (64: Diffusion Policy's; later stages double it)."""
    image_keypoints: int = field(default=32, metadata=ADDED_LATER)
    """Spatial-softmax keypoints per camera."""
    camera_features: int = field(default=64, metadata=ADDED_LATER)
    """Features per camera and step (the step vector grows by this per camera)."""
    image_pool: int = field(default=1, metadata=ADDED_LATER)
    """Average-pool each frame over pool x pool pixels before the crop (crop_shape is then in pooled
    pixels; 1: full resolution, as Diffusion Policy). Why: the frozen encoder runs at every control
    step, so its FLOPs are the step's; pooling by 2 cuts them about 3.3x with the same layers."""

    def __post_init__(self) -> None:
        check_positive("LWDConfig", horizon=self.horizon, obs_steps=self.obs_steps, latent_dim=self.latent_dim,
                       chunk_size=self.chunk_size, chunk_emb_dim=self.chunk_emb_dim, inference_steps=self.inference_steps,
                       latent_stride=self.latent_stride, basis_size=self.basis_size, vae_steps=self.vae_steps, prior_steps=self.prior_steps,
                       prior_lr=self.prior_lr, prior_batch_size=self.prior_batch_size, encoder_dim=self.encoder_dim,
                       encoder_layers=self.encoder_layers, encoder_heads=self.encoder_heads, denoiser_width=self.denoiser_width,
                       denoiser_blocks=self.denoiser_blocks, diffusion_train_steps=self.diffusion_train_steps)
        for name in ("policy_hidden", "hyper_hidden"):
            widths = getattr(self, name)
            if not widths or min(widths) < 1:
                raise ValueError(f"LWDConfig.{name} needs at least one positive width, got {widths}")
        if self.inference_steps > self.diffusion_train_steps:
            raise ValueError(f"LWDConfig.inference_steps ({self.inference_steps}) cannot exceed diffusion_train_steps "
                             f"({self.diffusion_train_steps})")
        if not 1 <= self.policy_obs_steps <= self.obs_steps:
            raise ValueError(f"LWDConfig.policy_obs_steps must be in [1, obs_steps={self.obs_steps}], got {self.policy_obs_steps}; "
                             "raise obs_steps too")
        if self.condition not in ("task", "state", "task+state"):
            raise ValueError(f"LWDConfig.condition must be 'task', 'state' or 'task+state', got {self.condition!r}")
        if self.segment_starts not in ("any", "episode"):
            raise ValueError(f"LWDConfig.segment_starts must be 'any' or 'episode', got {self.segment_starts!r}")
        if self.decoder not in ("chunked", "basis"):
            raise ValueError(f"LWDConfig.decoder must be 'chunked' or 'basis', got {self.decoder!r}")
        if self.sampler not in ("ddim", "ddpm"):
            raise ValueError(f"LWDConfig.sampler must be 'ddim' or 'ddpm', got {self.sampler!r}")
        if self.kl_weight < 0:
            raise ValueError(f"LWDConfig.kl_weight must be >= 0, got {self.kl_weight}")
        if not 0.0 <= self.ddim_eta <= 1.0:
            raise ValueError(f"LWDConfig.ddim_eta must be in [0, 1] (0: deterministic DDIM, 1: DDPM-like noise), got {self.ddim_eta}")
        if self.kl_warmup_steps < 0 or self.free_bits < 0:
            raise ValueError(f"LWDConfig.kl_warmup_steps and free_bits must be >= 0, got {self.kl_warmup_steps} and {self.free_bits}")
        if self.encoder_dim % self.encoder_heads:
            raise ValueError(f"LWDConfig.encoder_dim ({self.encoder_dim}) must be divisible by encoder_heads ({self.encoder_heads})")
        check_image_settings("LWDConfig", self)
        if not 0.0 <= self.style_dropout < 1.0 or (self.style_condition and self.style_dropout == 0.0):
            raise ValueError(f"LWDConfig.style_dropout must be in (0, 1) with style_condition (the 'no style' token is how "
                             f"the prior learns to sample without a style), got {self.style_dropout}")
        if self.sampler == "ddpm" and self.inference_steps != self.diffusion_train_steps:
            raise ValueError("LWDConfig: the ddpm sampler runs all diffusion_train_steps; set inference_steps equal to it or use ddim")

    @property
    def uses_task(self) -> bool:
        return "task" in self.condition

    @property
    def uses_state(self) -> bool:
        return "state" in self.condition
