"""Torch module -> ONNX file: the export itself, the graph passes every export gets, and saving.

Each graph is exported with the symbolic dims of its inputs dynamic (the batch) and the known output dims
pinned; `check_parity` in `parity` then compares it with PyTorch.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import onnx
import torch

from vljepa_ros.export.fp16 import convert_to_fp16
from vljepa_ros.export.input_normalisation import fold_input_normalisation
from vljepa_ros.export.output_normalisation import l2_normalise_output
from vljepa_ros.export.patch_embedding import patch_convs_to_matmul
from vljepa_ros.runtime.manifest import ClipSpec, TensorSpec, external_data_path

DEFAULT_OPSET = 18
# Above this many weight bytes a graph is saved with its weights in `<file>.data` (protobuf's 2 GB limit;
# ViT-H/g in fp32).
EXTERNAL_DATA_BYTES = 1_500_000_000


def export_graph(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    opset: int,
    dynamo: bool = False,
    fp16: bool = False,
    normalise_output: str | None = None,
    fold_normalisation: ClipSpec | None = None,
) -> None:
    """Export with the symbolic dims of `inputs` dynamic, pin the output dims, optionally convert to fp16,
    optionally L2-normalise output `normalise_output` inside the graph (in fp32, after any fp16 part).
    `fold_normalisation`: the float clip input becomes its uint8 crop (`input_normalisation`).

    The TorchScript exporter (deprecated in torch 2.13, pinned here) exports the encoder and predictor much
    faster than the torch.export-based one; the text encoder needs the latter (`dynamo=True`: the traced BERT
    graph fails the parity check). The raw export goes to a scratch folder (large models spill one file per
    tensor there).
    """
    dims = {name: torch.export.Dim(name) for t in inputs for name in t.shape if isinstance(name, str)}
    with tempfile.TemporaryDirectory(prefix="onnx_export_") as scratch:
        raw = Path(scratch) / path.name
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*The axis name.*will not be used")
            common = dict(
                input_names=[t.name for t in inputs],
                output_names=[t.name for t in outputs],
                opset_version=opset,
                dynamo=dynamo,
            )
            if dynamo:
                shapes = tuple({i: dims[d] for i, d in enumerate(t.shape) if isinstance(d, str)} for t in inputs)
                torch.onnx.export(module, args, str(raw), dynamic_shapes=shapes, verbose=False, **common)
            else:
                axes = {
                    t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in (*inputs, *outputs)
                }
                torch.onnx.export(module, args, str(raw), dynamic_axes=axes, do_constant_folding=True, **common)
        model = onnx.load(str(raw))
    _pin_static_dims(model, outputs)
    patch_convs_to_matmul(model)
    if fold_normalisation is not None:
        fold_input_normalisation(model, fold_normalisation)
    if fp16:
        model = convert_to_fp16(model)
    if normalise_output is not None:
        l2_normalise_output(model, normalise_output)
    save_graph(model, path)


def save_graph(model: onnx.ModelProto, path: Path, check: bool = True) -> None:
    """Save as one file, or with weights in `<file>.data` above EXTERNAL_DATA_BYTES; then check the graph
    (`check` False: graphs with onnxruntime's own ops in the default domain, which onnx's checker rejects)."""
    data = external_data_path(path)
    data.unlink(missing_ok=True)
    weight_bytes = sum(t.ByteSize() for t in model.graph.initializer)
    if weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
        # onnx writes the data file owner-only; the graph beside it is world-readable, and a robot's node often
        # runs as another user than the one who exported.
        data.chmod(path.stat().st_mode & 0o777)
    else:
        onnx.save_model(model, str(path))
    if check:
        onnx.checker.check_model(str(path))


def _pin_static_dims(model: onnx.ModelProto, outputs: Sequence[TensorSpec]) -> None:
    """Write the known output dims into the graph (the tracer leaves some fixed dims symbolic)."""
    by_name = {t.name: t for t in outputs}
    for out in model.graph.output:
        spec = by_name[out.name]
        for dim, value in zip(out.type.tensor_type.shape.dim, spec.shape):
            dim.Clear()
            if isinstance(value, int):
                dim.dim_value = value
            else:
                dim.dim_param = value
