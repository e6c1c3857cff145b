"""Loading weights safely: checksum first, then only formats that cannot run code.

The file is read once; its bytes are hashed and, only if the sha256 matches the card, those
same bytes are deserialised (no window for the file to change between check and load).
Pickles go through ``torch.load(weights_only=True)``, which refuses arbitrary objects.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.errors import ModelLoadError
from inference.models.card import ModelCard, WeightsFormat

if TYPE_CHECKING:
    import torch


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fp:
        for block in iter(lambda: fp.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_verified(path: Path, expected_sha256: str) -> bytes:
    """The file's bytes, or :class:`ModelLoadError` if missing or not matching the checksum."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelLoadError(path, "weights file is missing") from exc
    except OSError as exc:
        raise ModelLoadError(path, f"cannot read weights ({exc.strerror or exc})") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256.lower():
        reason = f"sha256 mismatch: the card expects {expected_sha256[:16]}…, the file has {actual[:16]}…"
        raise ModelLoadError(path, reason + "; refusing to load")
    return data


def load_state_dict_bytes(data: bytes, fmt: WeightsFormat, path: Path) -> dict[str, Any]:
    import torch

    if fmt == WeightsFormat.SAFETENSORS:
        try:
            from safetensors.torch import load as load_safetensors
        except ImportError as exc:
            raise ModelLoadError(path, "safetensors is not installed") from exc
        try:
            return dict(load_safetensors(data))
        except Exception as exc:
            raise ModelLoadError(path, f"not a valid safetensors file ({exc})") from exc
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything that is not plain tensors
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(path, f"refused: not a plain state dict ({first})") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(path, f"expected a state dict, found {type(state).__name__}")
    return state


def load_network(card: ModelCard, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the card's network and load its verified weights, in eval mode on ``device``."""
    import torch

    path = card.weights_path
    data = read_verified(path, card.sha256)
    if card.weights_format == WeightsFormat.ONNX:
        from inference.models.onnx_network import onnx_network

        return onnx_network(data, str(device), path)
    if card.weights_format == WeightsFormat.TORCHSCRIPT:
        try:
            module: torch.nn.Module = torch.jit.load(io.BytesIO(data), map_location=device)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ModelLoadError(path, f"not a TorchScript file ({type(exc).__name__})") from exc
        module.eval()
        return module
    from inference.models.architectures import build_model

    state = load_state_dict_bytes(data, card.weights_format, path)
    try:
        model = build_model(card.architecture, **card.architecture_args)
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelLoadError(path, f"weights do not fit architecture {card.architecture!r}: {str(exc)[:300]}") from exc
    model.eval()
    moved: torch.nn.Module = model.to(device)
    return moved
