"""Learned experts. Every module of this package is imported here, and each expert class registers
itself (`@EXPERTS.register`), so adding an expert is one module here plus its YAML in
configs/experts/<name>.yaml; nothing else lists them."""

import importlib
import pkgutil

from .base import EXPERTS, Expert, ExpertConfig, Tokens  # noqa: F401

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
