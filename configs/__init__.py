"""Shipped YAML configuration (package data `talkqa.configs`): extraction, experts, fusion, stacking,
training, benchmark and degrade recipes. Read them with `talkqa.config.config_path`."""
