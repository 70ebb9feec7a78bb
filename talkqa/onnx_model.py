"""Trained networks as ONNX graphs, run with ONNX Runtime on NumPy arrays: inference without torch.

Importing torch costs ~1.4 s of a cold `talkqa score`; the experts and the fusion model therefore save,
next to their torch weights, one `.onnx` file per network they run at inference and an `onnx.json`
that ties those files to the weights:

    {"format": 1, "weights": {"model.pt": "<blake2b>"}, "graphs": {"visual": {"file": "visual.onnx",
     "digest": "<blake2b>"}, ...}, "exported_with": {...}}

`fresh_exports(folder, weights_files)` returns the graph files only when the recorded weight digests match
the weights as they are now and every graph file is intact: a stale or missing export means the torch
path, never an error. `OnnxModel` loads one file once (CPU, `set_threads` like `torch.set_num_threads`).
`export_graph` (torch, only where models are saved) writes one `Graph`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import TalkqaError
from .store import atomic_write_bytes, atomic_write_json

EXPORTS_FILE = "onnx.json"
# Bumped when what an exported graph reads or returns changes: older exports then count as stale.
FORMAT = 1
OPSET = 17

_THREADS: dict[str, int] = {}  # process-wide, as torch.set_num_threads is


def set_threads(n: int) -> None:
    """Intra-op threads of the sessions made from now on (0 = ONNX Runtime's default)."""
    _THREADS["intra_op"] = int(n)


def file_digest(path: str | Path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


class OnnxModel:
    """One ONNX graph loaded into an ONNX Runtime session on the CPU; `run` takes and returns float32
    (or bool / uint8, as the graph declares) NumPy arrays, positionally in the graph's input order."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort  # lazy: only a model that was exported loads it

        self.path = Path(path)
        if not self.path.is_file():
            raise TalkqaError(f"ONNX graph {self.path} is missing; run `talkqa export-onnx` on its model folder")
        options = ort.SessionOptions()
        # no busy-waiting between ops: scoring runs an audio and a visual lane side by side on few cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if _THREADS.get("intra_op"):
            options.intra_op_num_threads = _THREADS["intra_op"]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise TalkqaError(f"ONNX graph {self.path} cannot be loaded ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); delete it and run `talkqa export-onnx` on its "
                              "model folder") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, *inputs: np.ndarray, **named: np.ndarray) -> list[np.ndarray]:
        """Inputs by position (the graph's order) or by name; names the graph does not read (an input the
        exporter pruned as unused) are ignored."""
        feed = dict(zip(self.input_names, inputs))
        feed.update({k: v for k, v in named.items() if k in self.input_names})
        return self.session.run(None, {k: np.ascontiguousarray(v) for k, v in feed.items()})


def fresh_exports(folder: str | Path, weights: Sequence[str]) -> dict[str, Path] | None:
    """graph name -> .onnx path when `folder` holds exports made from the weights files `weights` as they
    are now (names inside `folder`) in this format; None when they are missing, stale or damaged."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / EXPORTS_FILE).read_text())
        if manifest.get("format") != FORMAT or set(manifest["weights"]) != set(weights):
            return None
        if any(file_digest(folder / w) != manifest["weights"][w] for w in weights):
            return None
        graphs = {name: folder / g["file"] for name, g in manifest["graphs"].items()}
        if not graphs or any(file_digest(graphs[n]) != g["digest"] for n, g in manifest["graphs"].items()):
            return None
        return graphs
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_exports(folder: str | Path, weights: Sequence[str]) -> dict[str, OnnxModel] | None:
    """Sessions of the fresh exports of `folder` (see fresh_exports), or None."""
    graphs = fresh_exports(folder, weights)
    return None if graphs is None else {name: OnnxModel(path) for name, path in graphs.items()}


def is_exportable() -> bool:
    """torch.onnx.export needs the `onnx` package (not a talkqa dependency); without it nothing is exported
    and models run through torch."""
    return importlib.util.find_spec("onnx") is not None


@dataclass
class Graph:
    """One network to export: a torch.nn.Module taking tensors and returning a tensor or a tuple of them, example
    NumPy inputs to trace it on, the names of its inputs and outputs, and which axes vary
    (name -> {axis: label}). The same module is what the torch fallback runs."""

    module: Any
    example: tuple
    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)


def export_graph(graph: Graph, path: str | Path) -> None:
    """Trace the graph's module on its example inputs into an ONNX file (the TorchScript exporter: the
    dynamo one needs onnxscript)."""
    import torch  # lazy: exporting is part of saving a trained model, never of scoring

    buf = io.BytesIO()
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # fused attention kernels have no ONNX form
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on shapes fixed by design (channels, head width)
            torch.onnx.export(graph.module.eval(), tuple(torch.from_numpy(np.asarray(x)) for x in graph.example),
                              buf, input_names=graph.inputs, output_names=graph.outputs, dynamic_axes=graph.dynamic,
                              opset_version=OPSET, dynamo=False)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    atomic_write_bytes(path, buf.getvalue())


def write_exports_manifest(folder: str | Path, weights: Sequence[str], graphs: dict[str, str],
                           extra: dict[str, Any] | None = None) -> None:
    """onnx.json for graph files already written into `folder` (graph name -> file name)."""
    folder = Path(folder)
    versions = {}
    for pkg in ("torch", "onnx", "onnxruntime"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    atomic_write_json(folder / EXPORTS_FILE, {
        "format": FORMAT, "opset": OPSET,
        "weights": {w: file_digest(folder / w) for w in weights},
        "graphs": {name: {"file": f, "digest": file_digest(folder / f)} for name, f in graphs.items()},
        "exported_with": versions, **(extra or {}),
    })


def is_export_file(path: Path) -> bool:
    """Exports are derived from the weights: they are no part of a weights hash."""
    return path.suffix == ".onnx" or path.name == EXPORTS_FILE


def run_module(module, *inputs: np.ndarray, device: str = "cpu") -> list[np.ndarray]:
    """The torch fallback of `OnnxModel.run`: a Graph's module run on NumPy inputs."""
    import torch  # lazy: the fallback when a model has no fresh ONNX export, or is being trained

    with torch.no_grad():
        out = module(*(torch.from_numpy(np.ascontiguousarray(x)).to(device) for x in inputs))
    out = (out,) if isinstance(out, torch.Tensor) else out
    return [o.detach().float().cpu().numpy() if o.is_floating_point() else o.cpu().numpy() for o in out]
