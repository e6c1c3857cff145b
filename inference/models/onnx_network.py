"""An ONNX model run by onnxruntime behind a ``torch.nn.Module`` face, so the engine's slice,
volume and sliding-window paths (progress, cancel, outputs on the source grid) run it unchanged.

The session uses CUDA where onnxruntime's CUDA execution provider is installed and the engine
chose a CUDA device, else the CPU. Explanation maps need gradients, which onnxruntime does not
give: an ONNX model's card has no explanation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

__all__ = ["onnx_network"]


def onnx_network(data: bytes, device: str, path: Path) -> torch.nn.Module:
    """A module whose forward runs the ONNX model ``data`` (its first input and first output)."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelLoadError(path, 'onnxruntime is not installed: pip install "radlens[onnx]"') from exc
    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime's own error types for an invalid model
        raise ModelLoadError(path, f"not an ONNX model onnxruntime can run ({str(exc)[:200]})") from exc

    class OnnxNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.session = session
            self.input_name = session.get_inputs()[0].name
            self.providers = session.get_providers()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feed = x.detach().to("cpu", torch.float32).contiguous().numpy()
            out = self.session.run(None, {self.input_name: feed})[0]
            return torch.from_numpy(out).to(x.device)

    return OnnxNetwork().eval()
