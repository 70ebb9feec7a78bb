"""talkqa — multi-dimensional, explained quality scores for AI-generated talking-face videos."""

__version__ = "0.2.0"
