"""Shared names for the keys of episode data and training batches.

Using these constants instead of string literals means a typo is a ``NameError`` at import time,
not a ``KeyError`` deep inside a training loop, and the names are defined in exactly one place.
"""

# Per-step keys stored in :class:`lwd.data.episodes.Episodes`.
OBS = "obs"  # (N, Do) float32 low-dimensional observation
ACTION = "action"  # (N, Da) float32 action
TASK = "task"  # (N,) int64 task id (multi-task datasets only)

# Keys of a window / batch produced by :class:`lwd.data.segments.SegmentDataset`.
STATES = "states"  # (B, H, Do) obs at the same steps as the actions
ACTIONS = "actions"  # (B, H, Da)
MASK = "mask"  # (B, H) 1 for real steps, 0 for padding past an episode edge
OBS_HISTORY = "obs_history"  # (B, To, Do) observations ending at the anchor step

__all__ = ["OBS", "ACTION", "TASK", "STATES", "ACTIONS", "MASK", "OBS_HISTORY"]
