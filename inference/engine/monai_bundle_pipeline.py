"""A MONAI bundle run the way its own workflow runs it, with RadLens's progress, cancel and device.

MONAI parses the bundle's inference config (:class:`monai.bundle.ConfigParser`), and the bundle's
own components do the work, in the order its evaluator runs them:

1. ``preprocessing`` on ``{input_key: <file>}``: the volume is written to a temporary NIfTI file
   (RadLens's writer, the same affine as ``radlens convert``) in the system's temporary folder,
   so the bundle's ``LoadImaged`` and every transform after it see what they would see on disk;
2. ``inferer`` (e.g. its ``SlidingWindowInferer``) with the bundle's network, whose weights RadLens
   reads itself (sha256-checked, ``torch.load(weights_only=True)`` or TorchScript) instead of the
   bundle's ``CheckpointLoader``; each call of the network reports progress and checks cancel;
3. ``postprocessing`` without its saver transforms (``SaveImage``/``SaveImaged``): the bundle's
   ``Invertd`` brings the prediction back onto the file's grid, i.e. the source volume's grid.

The handlers, the evaluator and the dataloader are not built (nothing else runs). A bundle's
``device`` item is replaced by the device RadLens chose; out of GPU memory, the run is repeated on
the CPU and says so.
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engine.device import select_device
from inference.engine.findings import find_components
from inference.engine.result import Result
from inference.errors import InferenceCancelled, ModelLoadError
from inference.models.bundle_safety import unsafe_config_items
from inference.models.card import ModelCard, WeightsFormat
from inference.models.safe_load import read_verified
from inference.progress import CancelToken, ProgressCallback
from inference.volume import Volume

__all__ = ["run_monai_bundle"]

SAVERS = ("SaveImage", "SaveImaged")


def _parser(card: ModelCard, device: str) -> Any:
    import torch
    from monai.bundle.config_parser import ConfigParser

    args = card.architecture_args
    config = Path(str(args.get("config", "")))
    for file, sha in card.extra_weights:
        read_verified(Path(file), sha)  # the configs are what the card was written from
    parser = ConfigParser()
    parser.read_config(str(config))
    meta = config.parent / "metadata.json"
    if meta.is_file():
        parser.read_meta(str(meta))
    if not args.get("trusted", False):
        problems = unsafe_config_items(parser.get())
        if problems:
            raise ModelLoadError(config, f"the bundle's config reaches beyond MONAI and PyTorch: {problems[0]}")
    parser["bundle_root"] = str(args.get("bundle_root", config.parent.parent))
    parser["device"] = torch.device(device)
    return parser


def _network(card: ModelCard, parser: Any, device: str) -> Any:
    import torch

    data = read_verified(card.weights_path, card.sha256)
    if card.weights_format == WeightsFormat.TORCHSCRIPT:
        network = torch.jit.load(io.BytesIO(data), map_location=device)  # type: ignore[no-untyped-call]
    else:
        network = parser.get_parsed_content("network_def", instantiate=True)
        try:
            state = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
        except Exception as exc:
            raise ModelLoadError(card.weights_path, f"not a plain state dict ({type(exc).__name__}: {exc})") from exc
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]  # a CheckpointLoader-style {"model": state_dict}
        network.load_state_dict(state)
        network.to(device)
    network.eval()
    return network


def _without_savers(transform: Any) -> Any:
    from monai.transforms.compose import Compose

    if isinstance(transform, Compose):
        return Compose([t for t in transform.transforms if type(t).__name__ not in SAVERS])
    return transform


def _to_source_grid(pred: Any, shape: tuple[int, int, int]) -> npt.NDArray[Any]:
    """A prediction ``(C, i, j, k)`` on the file's voxel order → ``(C, k, j, i)``."""
    array = np.asarray(pred.detach().cpu().numpy() if hasattr(pred, "detach") else pred)
    if array.ndim == 3:
        array = array[None]
    out = np.ascontiguousarray(np.transpose(array, (0, 3, 2, 1)))
    if out.shape[1:] != shape:
        raise ModelLoadError(None, f"the bundle's output has shape {out.shape[1:]}, not the volume's {shape}")
    return out


def run_monai_bundle(
    card: ModelCard, volume: Volume, on_progress: ProgressCallback, cancel: CancelToken, device: str = "auto"
) -> Result:
    """Labels (and, for a multi-channel output, the foreground probability) on ``volume``'s grid."""
    dev = select_device(device)
    try:
        return _run(card, volume, on_progress, cancel, dev)
    except RuntimeError as exc:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if dev == "cpu" or "out of memory" not in str(exc).lower():
            raise
        result = _run(card, volume, on_progress, cancel, "cpu")
        result.messages.append(f"{dev} ran out of memory: ran on the CPU instead")
        return result


def _run(card: ModelCard, volume: Volume, on_progress: ProgressCallback, cancel: CancelToken, dev: str) -> Result:
    import torch

    from inference.io.nifti_writer import write_nifti

    t0 = time.perf_counter()
    result = Result(model=card.name, model_version=card.version, device=dev)
    on_progress(0.0, f"loading {card.name} (checking its sha256)")
    parser = _parser(card, dev)
    network = _network(card, parser, dev)
    key_in = str(card.architecture_args.get("input_key", "image"))
    key_out = str(card.architecture_args.get("output_key", "pred"))
    result.timings["load"] = time.perf_counter() - t0
    calls = [0]

    def predictor(x: Any, *args: Any, **kwargs: Any) -> Any:
        if cancel.cancelled:
            raise InferenceCancelled("cancelled during the bundle's inference")
        calls[0] += 1
        on_progress(min(0.9, 0.2 + 0.02 * calls[0]), f"{card.name}: window {calls[0]}")
        return network(x, *args, **kwargs)

    with tempfile.TemporaryDirectory(prefix="radlens-bundle-") as tmp:
        t1 = time.perf_counter()
        source = write_nifti(volume, Path(tmp) / "image.nii.gz")
        preprocessing = parser.get_parsed_content("preprocessing", instantiate=True)
        data = preprocessing({key_in: str(source)})
        result.timings["preprocess"] = time.perf_counter() - t1
        if cancel.cancelled:
            raise InferenceCancelled("cancelled before the bundle's inference")
        on_progress(0.2, f"{card.name}: inference")
        t2 = time.perf_counter()
        inferer = parser.get_parsed_content("inferer", instantiate=True)
        with torch.inference_mode():
            data[key_out] = inferer(data[key_in][None].to(dev), predictor)[0]
        result.timings["inference"] = time.perf_counter() - t2
        t3 = time.perf_counter()
        on_progress(0.9, f"{card.name}: post-processing")
        post = _without_savers(parser.get_parsed_content("postprocessing", instantiate=True))
        data = post(data)
    pred = _to_source_grid(data[key_out], volume.shape)
    if pred.shape[0] == 1:
        result.label_map = np.rint(pred[0]).clip(0, 255).astype(np.uint8)
    else:  # class scores or probabilities: the label with the highest, and the foreground's share
        result.label_map = np.argmax(pred, axis=0).astype(np.uint8)
        result.probability_map = np.clip(1.0 - pred[0], 0.0, 1.0).astype(np.float32)
    names = {lab.value: lab.name for lab in card.labels}
    result.findings = find_components(volume, result.label_map, result.probability_map, names)
    result.timings["postprocess"] = time.perf_counter() - t3
    on_progress(1.0, "done")
    return result
