"""Benchmark environments, made by name through `lwd.envs.registry.make_suite`."""
