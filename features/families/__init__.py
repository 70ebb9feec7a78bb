"""Hand-crafted feature families. Every module of this package is imported here, and each family
registers itself (`@FAMILIES.register`), so adding a family is one module here; nothing else lists them."""

import importlib
import pkgutil

from .base import FAMILIES, FamilyOutput, FeatureFamily, FeatureLabel, frame_windows  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
