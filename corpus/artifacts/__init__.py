"""Controlled artifacts for `talkqa degrade`, registered in ARTIFACTS by name.

One module per group (lipsync, expression, visual, audio, consistency, ...). Every module of this package is
imported here and each artifact registers itself, so `ARTIFACTS.names()` lists them all.
"""

import importlib
import pkgutil

from .base import ARTIFACTS, FPS, HOP, KINDS, SR, Artifact, Sample, Saturating

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ARTIFACTS", "Artifact", "Sample", "Saturating", "KINDS", "FPS", "SR", "HOP"]
