"""Shared names for the keys of episode data and training batches.

Using these constants instead of string literals means a typo is a ``NameError`` at import time,
not a ``KeyError`` deep inside a training loop, and the names are defined in exactly one place.
"""

# Per-step keys stored in :class:`lwd.data.episodes.Episodes`.
OBS = "obs"  # (N, Do) float32 low-dimensional observation
ACTION = "action"  # (N, Da) float32 action
TASK = "task"  # (N,) int64 task id (multi-task datasets only)
STYLE = "style"  # (N,) int64 expert style id, an index into attrs["styles"] (`lwd demos --styles` only)
# Optional, written by `lwd demos` when it makes recovery data; what a dynamics model needs beyond the labels.
EXECUTED_ACTION = "executed_action"  # (N, Da) float32 what the env executed (the label plus DART noise)
PUSHED = "pushed"  # (N,) bool obs[t+1] also followed from a push of the object, not from the action alone

# Keys of a window / batch produced by :class:`lwd.data.segments.SegmentDataset`.
STATES = "states"  # (B, H, Do) obs at the same steps as the actions
ACTIONS = "actions"  # (B, H, Da)
MASK = "mask"  # (B, H) 1 for real steps, 0 for padding past an episode edge
OBS_HISTORY = "obs_history"  # (B, To, Do) observations ending at the anchor step
# Only with WindowSpec(with_dynamics=True): what a world model fits, states[:, j] -> states[:, j + 1].
DRIVING_ACTIONS = "driving_actions"  # (B, H, Da) the executed action where recorded, else the label
UNPUSHED = "unpushed"  # (B, H) 1 where step j -> j + 1 was the action's doing alone (no push)
# Only with WindowSpec(image_keys=...): the camera frames of the observation history, one key per camera.
HISTORY_SUFFIX = "_history"


def image_history_key(image_key: str) -> str:
    """Batch key of an image key's frame history, e.g. "image" -> "image_history": (B, To, H, W, 3) uint8."""
    return f"{image_key}{HISTORY_SUFFIX}"


__all__ = ["OBS", "ACTION", "TASK", "STYLE", "EXECUTED_ACTION", "PUSHED", "STATES", "ACTIONS", "MASK", "OBS_HISTORY",
           "DRIVING_ACTIONS", "UNPUSHED", "image_history_key"]
