"""Corpus tools: writing clips, rendering synthetic talking heads, degrading real clips."""
