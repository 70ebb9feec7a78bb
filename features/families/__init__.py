"""Registered hand-crafted feature families. Importing this package registers all of them."""

from . import audio, consistency, expression, lipsync  # noqa: F401
from .base import FAMILIES, FamilyOutput, FeatureFamily, frame_windows  # noqa: F401
