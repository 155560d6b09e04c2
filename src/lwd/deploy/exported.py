"""`lwd eval RUN --exported DIR`: evaluate a trained run through its exported files, to check that
what ships behaves as what was trained.

The run's method loads the folder (`WeightGenerator.load_exported`; LWD: `lwd.methods.lwd.exported`,
generator.onnx in ONNX Runtime making the weights and lwd_controller.py or the compiled C controller
running them). Here: the dispatch, and the checks every exported folder gets (readable records,
each file's SHA-256 as recorded at export, and the run's own weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lwd.checkpoint import file_sha256
from lwd.methods.base import weight_generator_of


def load_exported(model: Any, folder: str | Path, run_dir: str | Path | None = None) -> Any:
    """The method whose policies run from the exported files in `folder` (made from `run_dir`, whose
    weights the files' records must name); a run of a method that generates no weights is refused."""
    return weight_generator_of(model).load_exported(Path(folder), None if run_dir is None else Path(run_dir))


def read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err})") from err
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(value).__name__}")
    return value


def check_hashes(folder: Path, run_dir: str | Path, controller: dict[str, Any], onnx_info: dict[str, Any]) -> None:
    """Every exported file matches the SHA-256 recorded when it was written, and both records name
    this run's weights: a generator.onnx (or any file) from another run or export is refused."""
    run_hash = file_sha256(Path(run_dir) / "model.safetensors")
    for record_name, record in (("controller.json", controller), ("onnx.json", onnx_info)):
        hashes = record.get("sha256")
        if not isinstance(hashes, dict) or not hashes or "run_model_sha256" not in record:
            raise ValueError(f"{folder}/{record_name} records no file hashes (an export from an older lwd); "
                             f"export the run again with --overwrite")
        if record["run_model_sha256"] != run_hash:
            raise ValueError(f"{folder}/{record_name} was exported from another run than {run_dir} (its weights differ)")
        for name, expected in hashes.items():
            path = folder / str(name)
            if not path.is_file():
                raise ValueError(f"{path} is missing (listed in {record_name})")
            if file_sha256(path) != expected:
                raise ValueError(f"{path} is not the file exported with {record_name} (its SHA-256 differs: "
                                 "changed, truncated or from another export)")
