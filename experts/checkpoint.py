"""Saving and loading expert weights with their config and versions (one folder per expert)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from talkqa import __version__
from talkqa.config import save_config
from talkqa.errors import TalkqaError
from talkqa.store import atomic_write_bytes, atomic_write_json, atomic_write_text


def save_checkpoint(folder: str | Path, model, config, meta: dict[str, Any]) -> None:
    """model.pt (the state dict of the torch.nn.Module `model`), config.yaml, meta.json, model_card.md."""
    import torch  # lazy: saving weights is training; scoring reads ONNX exports when they are there

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # half precision halves the shipped size; these small models lose nothing measurable
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, buf)
    atomic_write_bytes(folder / "model.pt", buf.getvalue())
    save_config(config, folder / "config.yaml")
    meta = {**meta, "talkqa_version": __version__, "torch_version": torch.__version__}
    atomic_write_json(folder / "meta.json", meta)
    write_model_card(folder, meta, model)


def write_model_card(folder: Path, meta: dict[str, Any], model) -> None:
    """model_card.md from what training recorded: data, command, seed, metrics, limits."""

    n_params = sum(p.numel() for p in model.parameters())
    lines = [
        f"# {meta.get('name')} expert — model card",
        "",
        meta.get("summary", ""),
        "",
        f"- version: {meta.get('version')}; talkqa {meta['talkqa_version']}; torch {meta['torch_version']}",
        f"- parameters: {n_params:,} (stored in float16: {(folder / 'model.pt').stat().st_size / 1e6:.2f} MB)",
        f"- training data: {meta.get('training_data', 'see metrics')}",
        f"- command: `{meta.get('command', '')}`",
        f"- seed: {meta.get('seed')}",
        "",
        "## Held-out metrics",
        "",
        "```json",
        json.dumps(meta.get("metrics", {}), indent=2),
        "```",
        "",
        "## Known limits",
        "",
        meta.get("limits", ""),
        "",
    ]
    atomic_write_text(folder / "model_card.md", "\n".join(lines))


def load_checkpoint(folder: str | Path, model, name: str) -> dict[str, Any]:
    """Fill the torch.nn.Module `model` with the weights in `folder`; returns meta.json."""
    folder = Path(folder)
    path = folder / "model.pt"
    if not path.is_file():
        raise TalkqaError(f"{name}: no weights at {path}; train them with `talkqa train-expert {name} --store STORE` "
                          f"or set `weights:` in configs/experts/{name}.yaml")
    import torch  # lazy: the torch path (training, or weights without a fresh ONNX export)

    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise TalkqaError(f"{name}: weights at {folder} do not fit the configured model ({str(exc).splitlines()[0]}); "
                          "use the config saved beside them") from None
    meta_path = folder / "meta.json"
    return json.loads(meta_path.read_text()) if meta_path.is_file() else {}
