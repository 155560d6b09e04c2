"""Benchmark environments (gymnasium); `lwd.suites.make_suite` makes them by name."""
