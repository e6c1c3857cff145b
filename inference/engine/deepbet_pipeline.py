"""deepbet brain extraction (Fisch et al.) through the engine's conventions.

The algorithm is deepbet 1.0.2's ``BrainExtraction.run``, step for step:

1. the volume in closest-canonical RAS voxel order ``(x, y, z)``, as ``nib.as_closest_canonical``
   gives it; here it is reached by re-indexing our voxels (transposes and flips, no resampling);
2. the bounding-box network at 128³ (nearest-exact), intensities normalised between the
   0.5 and 99.5 % quantiles of the small volume, largest 26-connected component kept, its box
   grown by 10 % on each side and scaled back to the full grid;
3. the segmentation network at 256³ on that box, its output resized back to the box;
4. threshold, largest component, voids filled.

Both TorchScript files are read once and checked against the card's sha256 before either is
deserialised (:func:`inference.models.safe_load.read_verified`). The mask and the probability
map are mapped back onto the source grid ``[k, j, i]`` by inverting the same re-indexing.
"""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.engine.device import select_device
from inference.engine.findings import find_components
from inference.engine.result import Result
from inference.errors import InferenceCancelled, ModelLoadError
from inference.io.orientation import AxisMap, closest_lps_axes
from inference.models.card import ModelCard
from inference.models.safe_load import read_verified
from inference.progress import CancelToken, ProgressCallback
from inference.volume import Volume

if TYPE_CHECKING:
    import torch

BBOX_WEIGHTS = "bbox_model.pt"
SMALL_SHAPE = (128, 128, 128)
SHAPE = (256, 256, 256)
BBOX_MARGIN = 0.1
QUANTILES = (0.005, 0.995)


def to_ras(array: npt.NDArray[Any], amap: AxisMap) -> npt.NDArray[Any]:
    """A view of a ``[k, j, i]`` array in closest-canonical RAS voxel order ``(x, y, z)``.

    ``amap.apply`` gives ``[z, y, x]`` along patient L, P, S; flipping x and y turns that into
    R, A, S, and the transpose puts x first, as nibabel's arrays are.
    """
    lps = amap.apply(array)
    return np.transpose(lps[:, ::-1, ::-1], (2, 1, 0))


def from_ras(ras: npt.NDArray[Any], amap: AxisMap, shape: tuple[int, int, int]) -> npt.NDArray[Any]:
    """The inverse of :func:`to_ras`: a new ``[k, j, i]`` array of ``shape`` holding ``ras``."""
    out = np.empty(shape, dtype=ras.dtype)
    to_ras(out, amap)[...] = ras  # to_ras is a view, so this writes every source voxel once
    return out


def _stage(on_progress: ProgressCallback, cancel: CancelToken, fraction: float, message: str) -> None:
    """Report a stage, then stop if cancelled (so a cancel set while reporting takes effect at once)."""
    on_progress(fraction, message)
    if cancel.cancelled:
        raise InferenceCancelled(f"cancelled before: {message}")


def _extra_sha256(card: ModelCard, name: str) -> str:
    for file, sha in card.extra_weights:
        if file == name:
            return sha
    raise ModelLoadError(card.path, f"the card lists no checksum for {name} (extra_weights)")


def load_networks(card: ModelCard, device: str) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    """``(bbox_network, network)``: both files verified first, only then deserialised."""
    import torch

    bbox_path = card.resolve_file(BBOX_WEIGHTS)
    main_path = card.weights_path
    verified: list[tuple[Path, bytes]] = [
        (bbox_path, read_verified(bbox_path, _extra_sha256(card, BBOX_WEIGHTS))),
        (main_path, read_verified(main_path, card.sha256)),
    ]
    nets: list[torch.jit.ScriptModule] = []
    for path, data in verified:
        try:
            with warnings.catch_warnings():  # deepbet ships TorchScript; torch 2.x calls it deprecated
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=DeprecationWarning)
                net: torch.jit.ScriptModule = torch.jit.load(io.BytesIO(data), map_location=device)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise ModelLoadError(path, f"not a TorchScript file ({type(exc).__name__})") from exc
        net.eval()
        nets.append(net)
    return nets[0], nets[1]


def _normalise(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """deepbet's ``normalize``: clip to the quantiles, z-score, then ImageNet-like mean and sd."""
    x = ((x - low) / (high - low)).clamp(min=0, max=1)
    x = (x - x.mean()) / x.std()
    return 0.226 * x + 0.449


def _largest_component(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The largest 26-connected component (deepbet uses cc3d; scipy gives the same labels' sizes)."""
    try:
        import cc3d

        labels: npt.NDArray[np.integer[Any]] = cc3d.connected_components(mask.astype(np.uint8), connectivity=26)
    except ImportError:
        from scipy import ndimage

        labels = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))[0]
    fg = labels[labels != 0]
    if fg.size == 0:
        return np.zeros(mask.shape, dtype=bool)
    out: npt.NDArray[np.bool_] = labels == np.bincount(fg).argmax()
    return out


def _fill_voids(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    try:
        import fill_voids

        filled: npt.NDArray[np.bool_] = fill_voids.fill(mask, in_place=False).astype(bool, copy=False)
    except ImportError:
        from scipy import ndimage

        filled = ndimage.binary_fill_holes(mask)
    return filled


def _bbox_with_margin(mask_small: torch.Tensor, shape: tuple[int, ...], margin: float) -> tuple[slice, slice, slice]:
    """deepbet's ``get_bbox_with_margin`` (same float32 arithmetic and rounding)."""
    import torch

    rs = [torch.where(mask_small.mean(dims) > 0.02)[0] for dims in [(1, 2), (0, 2), (0, 1)]]
    if any(r.numel() == 0 for r in rs):
        raise ValueError("not enough foreground for a bounding box")
    center = torch.tensor([(r.max() + 1 + r.min()) / 2 for r in rs])
    size = torch.tensor([(r.max() + 1) - r.min() for r in rs])
    scale = torch.tensor(shape) / torch.tensor(mask_small.shape)
    center, size = scale * center, scale * size
    size = (1 + 2 * margin * torch.ones(3)) * size
    center, size = center.round(), size.round()
    box = [(int(c - s / 2), int(c + s / 2)) for c, s in zip(center.tolist(), size.tolist(), strict=True)]
    s0, s1, s2 = (slice(max(0, lo), min(n, hi)) for (lo, hi), n in zip(box, shape, strict=True))
    return (s0, s1, s2)


def run_deepbet(
    card: ModelCard,
    volume: Volume,
    on_progress: ProgressCallback,
    cancel: CancelToken,
    device: str = "auto",
) -> Result:
    """Brain mask (label 1) and brain probability on ``volume``'s grid; the finding's volume is the TIV."""
    import torch
    import torch.nn.functional as F

    t0 = time.perf_counter()
    dev = select_device(device)
    result = Result(model=card.name, model_version=card.version, device=dev)
    _stage(on_progress, cancel, 0.0, f"loading {card.name} (checking both networks' sha256)")
    bbox_net, net = load_networks(card, dev)
    result.timings["load"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    amap = closest_lps_axes(volume.direction)
    ras = np.ascontiguousarray(to_ras(volume.voxels, amap), dtype=np.float32)
    x = torch.nan_to_num(torch.from_numpy(ras).to(dev))
    full_shape = tuple(x.shape)
    x_small = F.interpolate(x[None, None], SMALL_SHAPE, mode="nearest-exact")[0, 0]
    low, high = x_small.quantile(QUANTILES[0]), x_small.quantile(QUANTILES[1])
    result.timings["preprocess"] = time.perf_counter() - t1

    _stage(on_progress, cancel, 0.1, "finding the brain's bounding box (128³)")
    t2 = time.perf_counter()
    with torch.inference_mode():
        small = bbox_net(_normalise(x_small, low, high)[None, None])[0, 1]
    small_mask = _largest_component((small > 0.5).cpu().numpy())
    result.timings["bbox"] = time.perf_counter() - t2
    src_shape = volume.shape
    try:
        box = _bbox_with_margin(torch.from_numpy(small_mask.astype(np.float32)), full_shape, BBOX_MARGIN)
    except ValueError:  # too little foreground (deepbet itself stops on an assertion here)
        result.messages.append("deepbet found no brain in this volume (is it a T1-weighted head MRI?)")
        result.label_map = np.zeros(src_shape, dtype=np.uint8)
        result.probability_map = np.zeros(src_shape, dtype=np.float32)
        result.study_score = None
        on_progress(1.0, "done: no brain found")
        return result

    _stage(on_progress, cancel, 0.3, "segmenting the brain (256³)")
    t3 = time.perf_counter()
    with torch.inference_mode():
        prob = torch.zeros_like(x)
        xb = F.interpolate(x[box][None, None], SHAPE, mode="nearest-exact")[0, 0]
        out = net(_normalise(xb, low, high)[None, None])[0, 1]
        prob[box] = F.interpolate(out[None, None], prob[box].shape, mode="nearest-exact")[0, 0]
    prob_ras = prob.float().cpu().numpy()
    del x, xb, out, prob
    result.timings["inference"] = time.perf_counter() - t3

    _stage(on_progress, cancel, 0.9, "post-processing the mask")
    t4 = time.perf_counter()
    mask_ras = np.zeros(prob_ras.shape, dtype=bool)
    mask_ras[box] = _fill_voids(_largest_component(prob_ras[box] > card.threshold))
    label_map = from_ras(mask_ras.astype(np.uint8), amap, src_shape)
    probability = from_ras(prob_ras, amap, src_shape)
    result.label_map = label_map
    result.probability_map = probability
    names = {lab.value: lab.name for lab in card.labels} or {1: "brain"}
    result.findings = find_components(volume, label_map, probability, names)
    inside = label_map.astype(bool)
    result.study_score = float(probability[inside].mean()) if inside.any() else None
    result.timings["postprocess"] = time.perf_counter() - t4
    on_progress(1.0, "done")
    return result
