"""The ensemble's networks on ONNX Runtime: the same numbers, faster on a CPU.

On the CPU, prediction is bound by the networks, not by decoding (README, Benchmarks), and ONNX
Runtime runs the same fp32 graphs faster than torch's eager kernels, with the same clip
log-probabilities to within 1e-4 (tested for every member kind).

Where the graphs come from: they are exported from the loaded torch networks when the ensemble is
loaded (`export_networks`), in memory, by torch's own exporter. The manifest and its state dicts
stay the only truth: there is no second copy of the weights to ship, hash or keep in step, and any
weights folder (a fork's trained ensemble too) gets the speed. The price is the export at start-up
(README, Benchmarks). A network whose export fails stays on torch, with a warning.

What is exported: each network's chunk scorer (chunks -> logits), and once for all the members
that share them, the frozen musicnn taggers (chunks -> tag logits, embedding). Their small heads,
the speech cue, the log-mel front end and the combination stay in torch: each is a small share of
the work, run on one torch thread beside ONNX Runtime's (model/ensemble.py). musicnn's front end
takes a form of the same arithmetic that ONNX Runtime runs faster (model/musicnn.py).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

BACKENDS = ("auto", "torch", "onnxruntime")
_OPSET = 17


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class ExportedFunction:
    """`function(chunks)` for (n, mels, frames) float32 chunks, run by an ONNX Runtime session
    exported from `module`. Chunks of another shape than the exported one go to `module` itself.

    ONNX Runtime's memory arena keeps the largest call's activations for the session's lifetime,
    so it is fed at most `chunks_per_call` chunks at a time (half of what torch is given, at most
    16): that bounds the process's memory at almost no cost in speed (README, Benchmarks)."""

    def __init__(self, module: nn.Module, example: Tensor, outputs: list[str], threads: int):
        import onnxruntime as ort

        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's notes on traced shapes
            torch.onnx.export(
                module.eval(),
                (example,),
                buffer,
                dynamo=False,
                input_names=["chunks"],
                output_names=outputs,
                dynamic_axes={name: {0: "n"} for name in ["chunks", *outputs]},
                opset_version=_OPSET,
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        # Idle threads sleep instead of spinning: the decode workers share these cores (README, Benchmarks)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        self.module, self.shape, self.outputs = module, tuple(example.shape[1:]), len(outputs)
        self.chunks_per_call = max(1, min(16, getattr(module, "chunks_per_call", 64) // 2))  # any nn.Module

    def __call__(self, chunks: Tensor) -> Tensor | tuple[Tensor, ...]:
        if tuple(chunks.shape[1:]) != self.shape:
            return self.module(chunks)
        feed = {"chunks": np.ascontiguousarray(chunks.detach().cpu().float().numpy())}
        results = tuple(torch.from_numpy(r) for r in self.session.run(None, feed))
        return results[0] if self.outputs == 1 else results


def export_networks(ensemble, threads: int) -> dict[str, Callable]:
    """ONNX Runtime versions of an ensemble's networks, by member name (chunk scorers) and by
    backbone key (shared frozen taggers), for `Ensemble.member_log_probs`."""
    exported: dict[str, Callable] = {}
    for member in ensemble.manifest.members:
        if member.kind == "prior":
            continue
        network = ensemble.networks[member.name]
        frames = member.spectrogram.seconds_to_frames(member.chunk_seconds)
        example = torch.randn(2, member.spectrogram.n_mels, frames)
        key = ensemble.backbone_keys.get(member.name)
        try:
            if key is None:
                exported[member.name] = ExportedFunction(network, example, ["logits"], threads)
            elif key not in exported:  # shared frozen layers: the network says how to export them
                exported[key] = network.export_backbone(example, threads)
        except Exception as error:  # an operator the exporter or the runtime lacks: stay on torch
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            warnings.warn(
                f"member {member.name!r} stays on torch: its ONNX export failed ({reason})", stacklevel=2
            )
    return exported
