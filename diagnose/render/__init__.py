"""Renderers: pure builders of what a person reads (rich) or a program reads (JSON)."""
