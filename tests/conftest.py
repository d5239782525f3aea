"""Shared test settings: hypothesis without per-example deadlines (CI machines are shared and
their timing is noise; the properties, not the speed, are under test)."""

from hypothesis import settings

settings.register_profile("actlab", deadline=None, max_examples=60, derandomize=True)
settings.load_profile("actlab")
