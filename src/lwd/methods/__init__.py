"""Learning methods, one folder each (config, model, runtime policy, presets), plus their contract.

Each folder under `lwd/methods/` registers its method on import (`@register_method`); the
registry finds the folders itself, so no other file names a method.
"""

from lwd.methods.base import (
    BenchCell,
    Cost,
    GenerationRuntime,
    Method,
    Policy,
    Preset,
    RuntimeOptions,
    Stage,
    build_method,
    get_method,
    method_names,
    register_method,
    resolve_preset,
)

__all__ = [
    "BenchCell",
    "Cost",
    "GenerationRuntime",
    "Method",
    "Policy",
    "Preset",
    "RuntimeOptions",
    "Stage",
    "build_method",
    "get_method",
    "method_names",
    "register_method",
    "resolve_preset",
]
