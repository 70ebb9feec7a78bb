"""talkqa — multi-dimensional, explained quality scores for AI-generated talking-face videos.

    import talkqa
    result = talkqa.score("clip.mp4")          # the shipped default model
    scorer = talkqa.Scorer("models/mine")      # load once, score many
    print(scorer.score("clip.mp4").to_dict())

`Scorer`, `Result` and `score` are imported on first use, so `import talkqa` stays cheap.
"""

__version__ = "0.2.0"

_LAZY = {"Scorer": "scoring.scorer", "Result": "scoring.result", "score": "scoring.scorer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = ["__version__", "Scorer", "Result", "score"]
