"""Registered experts. Importing this package registers all of them; each has one module here and
one YAML file in configs/experts/<name>.yaml."""

from .base import EXPERTS, Expert, ExpertConfig, Tokens  # noqa: F401
from . import audio, expression, sync  # noqa: F401,E402
