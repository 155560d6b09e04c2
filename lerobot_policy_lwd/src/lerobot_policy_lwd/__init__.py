"""Latent Weight Diffusion as a LeRobot policy (`--policy.type=lwd`).

LeRobot imports this package by its distribution name (`lerobot_policy_*`) before parsing a
command line; importing the config registers the type. The policy (modeling_lwd) and processors
(processor_lwd) are found by LeRobot's naming convention, on first use.
"""

from lerobot_policy_lwd.configuration_lwd import LWDConfig, LWDStagesSchedulerConfig

__all__ = ["LWDConfig", "LWDStagesSchedulerConfig"]
