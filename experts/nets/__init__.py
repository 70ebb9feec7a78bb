"""The experts' torch networks, one module per expert: the nn.Modules, their training losses and the
graphs (`graphs(model, config)`) that are exported to ONNX and that the torch fallback runs.

Nothing here is imported to score a clip with exported models: experts/<name>.py imports its network
module lazily, to train, to export, or when a weights folder has no fresh ONNX export. This package's
__init__ imports nothing, so importing `talkqa.experts` never imports torch."""
