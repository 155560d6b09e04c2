"""Scripted experts that generate demonstrations."""
