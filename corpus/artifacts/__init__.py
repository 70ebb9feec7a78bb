"""Controlled artifacts for `talkqa degrade`, registered in ARTIFACTS by name.

One module per group: lipsync, expression, audio, consistency. Importing this package registers
them all; `ARTIFACTS.names()` lists them.
"""

from .base import ARTIFACTS, FPS, HOP, KINDS, SR, Artifact, Sample
from . import audio, consistency, expression, lipsync  # noqa: F401  (registration)

__all__ = ["ARTIFACTS", "Artifact", "Sample", "KINDS", "FPS", "SR", "HOP"]
