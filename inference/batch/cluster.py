"""``radlens analyze ... --cluster ADDRESS|local``: the batch run's three stages on a Ray cluster.

The stacks become a Ray Data dataset streamed through three operators, each one the function the
local pipeline runs for that stage (:mod:`inference.batch.pipeline`):

* **load** (a CPU task per stack): :func:`~inference.batch.pipeline.load_for_batch`;
* **infer** (a pool of actors, each holding the loaded models; one GPU each where the cluster has
  GPUs): :func:`inference.engine.run.run`;
* **write** (a CPU task per stack): :func:`~inference.batch.pipeline.write_outputs`, every file
  under a temporary name and renamed, so a task Ray retries (a node lost) overwrites, never
  duplicates.

Ray Data's streaming executor gives backpressure and resource limits; nothing is queued on top
of it. Each stage catches every exception of its stack and passes on a row with the reason, so
one bad stack never aborts the dataset (Ray Data's default on an uncaught exception).

The per-stack manifest stays the source of truth: the driver leaves out the stacks already done
before it submits anything (``analyze``'s resume check) and is the only process that writes a
manifest, once per stack, when the stack's written row reaches it; a stack delivered twice (a
retried task whose first attempt also finished) is recorded once. A driver that dies leaves
stacks without manifests, which the same command redoes.

Between stages a row carries the pickled volume (as loaded: int16 for most CT) and the engine's
result (uint8 label map, float32 probability and heat maps): about ``voxels × (2 + 1 + 4 × maps)``
bytes, 1 MB for a 24 × 96 × 96 stack with two maps, ~1.3 GB for 300 × 512². Ray Data keeps at most
a few such rows per operator in the object store.

Importing this module does not import Ray.
"""

from __future__ import annotations

import os
import pickle
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inference.batch.pipeline import BatchInputError, WriteTask, load_for_batch, write_outputs
from inference.batch.resume import MANIFEST, remove_stale_temporaries
from inference.batch.summary import REFUSED
from inference.io.atomic import atomic_write
from inference.progress import CancelToken

if TYPE_CHECKING:
    from inference.batch.pipeline import _Run
    from inference.batch.plan import Job

INSTALL_HINT = "pip install 'radlens[cluster]' (Ray with Ray Data) on this machine and on every node of the cluster"


class ClusterError(BatchInputError):
    """The Ray cluster cannot run the batch (not installed, not answering, outputs not writable...)."""


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ClusterError(f"--cluster needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _answers(address: str, timeout: float = 5.0) -> None:
    """A ``host:port`` (or ``ray://host:port``) that refuses connections is refused here, at once:
    ``ray.init`` would wait for a minute before saying so."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(
            f"--cluster {address!r}: give HOST:PORT of the head node (e.g. 10.0.0.5:6379), auto or local"
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(
            f"--cluster {address}: no Ray head answers there ({exc.strerror or exc}); start one with "
            "`ray start --head` or check the address"
        ) from None


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (``local``: start one on this machine; ``auto``: the one
    ``ray start`` left here or ``RAY_ADDRESS``). Returns whether this call connected (and so
    should disconnect). A Ray already initialised in this process is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return False
    if address not in ("local", "auto"):
        _answers(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "WARNING"}
    try:
        ray.init(address=address, **kwargs)  # "local": a new one here, even where `ray start` left one
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"--cluster {address}: cannot join the Ray cluster: {str(exc)[:300]}") from None
    return True


def _quiet() -> None:
    import logging

    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False  # radlens draws its own
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its progress lines every few seconds


def _probe(out: str, cards: bytes) -> str:
    """On a worker: the output folder is writable, and the models load (an empty string) or why not."""
    probe = Path(out) / f".radlens-probe.tmp-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return (
            f"a worker on {socket.gethostname()} cannot write to the output folder {out} ({exc.strerror or exc}): "
            "it must be a path every node can write (a shared file system)"
        )
    from inference.engine.run import load_model

    for card in pickle.loads(cards):
        if card.pipeline:
            continue
        try:
            load_model(card, "cpu")
        except Exception as exc:
            why = f"{type(exc).__name__}: {str(exc)[:300]}"
            return f"a worker on {socket.gethostname()} cannot load the model {card.key}: {why}"
    return ""


def check_workers(out: Path, jobs: list[Job]) -> None:
    """Before any stack is submitted: a worker can write the outputs and load every model needed."""
    ray = _ray()
    cards = list({j.card.key: j.card for j in jobs if j.card is not None}.values())
    reason = ray.get(ray.remote(num_cpus=0)(_probe).remote(os.fspath(out), pickle.dumps(cards)), timeout=600)
    if reason:
        raise ClusterError(reason)


# -- the three stages (run on the cluster's workers) ---------------------------------------------


def _failed(row: dict[str, Any], stage: str, exc: BaseException) -> dict[str, Any]:
    return {**row, "payload": b"", "error": f"{stage}: {type(exc).__name__}: {str(exc)[:300]}"}


def load_stage(row: dict[str, Any]) -> dict[str, Any]:
    if row["error"]:
        return row
    try:
        task: WriteTask = pickle.loads(row["task"])
        volume, took, error = load_for_batch(task.job.stack)
        if volume is None:
            return {**row, "payload": b"", "error": error}
        return {**row, "payload": pickle.dumps((volume, took), protocol=5)}
    except Exception as exc:
        return _failed(row, "loading", exc)


class InferStage:
    """An actor of the inference pool: one :class:`~inference.engine.session.ModelSession` (each
    model loaded once), so every stack gets the input check the local pipeline gives it."""

    def __init__(self, device: str, force: bool = False, model_chosen: bool = False) -> None:
        from inference.engine.session import ModelSession

        self.session = ModelSession(device)
        self.force = force
        self.model_chosen = model_chosen

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["error"]:
            return row
        from inference.errors import UnsuitableInputError

        try:
            task: WriteTask = pickle.loads(row["task"])
            volume, load_s = pickle.loads(row["payload"])
            t0 = time.perf_counter()
            job = task.job
            assert job.card is not None  # only stacks with a model are submitted
            result = self.session.analyse(
                job.card,
                volume,
                stack=job.stack,
                modality=job.modality,
                model_chosen=self.model_chosen,
                force=self.force,
            )
            infer_s = time.perf_counter() - t0
            return {**row, "payload": pickle.dumps((volume, result, load_s, infer_s), protocol=5)}
        except UnsuitableInputError as exc:  # worded as the local run words it
            return {**row, "payload": b"", "error": "; ".join(exc.reasons) + " (--force runs it)", "refused": True}
        except Exception as exc:
            return _failed(row, "inference", exc)


def write_stage(row: dict[str, Any]) -> dict[str, Any]:
    if row["error"]:
        return row
    try:
        task: WriteTask = pickle.loads(row["task"])
        volume, result, load_s, infer_s = pickle.loads(row["payload"])
        summary, manifest = write_outputs(task, volume, result, load_s, infer_s)
        return {**row, "payload": pickle.dumps((summary, manifest))}
    except Exception as exc:
        return _failed(row, "writing outputs", exc)


# -- the driver ----------------------------------------------------------------------------------


def _actors(ray: Any, stacks: int) -> tuple[int, float]:
    """Inference actors and the GPUs each holds: one per GPU where the cluster has GPUs, else one
    per two CPUs (the other CPU loads and writes), at least one, never more than the stacks."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus:
        return max(1, min(gpus, stacks)), 1.0
    return max(1, min(int(resources.get("CPU", 1)) // 2, stacks)), 0.0


def execute_on_cluster(run: _Run, todo: list[Job], cancel: CancelToken) -> None:
    """Analyse ``todo`` on the connected cluster, recording each stack's row (and manifest) in ``run``."""
    run.writer.shutdown(wait=False)  # the local writers are not used
    if not todo:
        return
    ray = _ray()
    from ray.data import ActorPoolStrategy

    _quiet()
    check_workers(run.options.out, todo)
    run.total = len(todo)
    by_index: dict[int, Job] = {}
    items = []
    for i, job in enumerate(todo):
        by_index[i] = job
        task = run.write_task(job)
        items.append({"i": i, "task": pickle.dumps(task, protocol=5), "payload": b"", "error": "", "refused": False})
    actors, gpus = _actors(ray, len(todo))
    actor_cpus = 1.0 if ray.cluster_resources().get("CPU", 0) >= actors + 1 else 0.5
    device = run.options.device if run.options.device != "auto" else ("cuda" if gpus else "cpu")
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # Loading and writing ask half a CPU: the actors never hold every CPU a small cluster has (a
    # one-CPU node then ran the actor and nothing else: a deadlock), and resources that differ
    # from the actors' keep Ray Data from fusing loading into them (where it ran serially).
    ds = ds.map(load_stage, num_cpus=0.5)
    ds = ds.map(
        InferStage, compute=ActorPoolStrategy(size=actors),
        fn_constructor_kwargs={
            "device": device, "force": run.options.force, "model_chosen": run.options.model is not None,
        },
        num_cpus=actor_cpus, num_gpus=gpus,
    )  # fmt: skip
    ds = ds.map(write_stage, num_cpus=0.5)
    for job in todo[:1]:
        run.progress(job, 0.0, "on the cluster")
    for row in ds.iter_rows():
        cancel.raise_if_cancelled()
        job = by_index[int(row["i"])]
        if job.folder in run.rows:  # delivered twice (a retried task): recorded once
            continue
        if row["error"]:
            failed = run.failed(job, str(row["error"]))
            run.rows[job.folder] = {**failed, "status": REFUSED} if row.get("refused") else failed
        else:
            summary, manifest = pickle.loads(row["payload"])
            # An attempt lost with its node may have left a temporary file beside the outputs the
            # retry wrote: the stack is complete only without it.
            remove_stale_temporaries(run.options.out / job.folder)
            atomic_write(run.options.out / job.folder / MANIFEST, manifest)
            run.rows[job.folder] = summary
        run.done += 1
        run.progress(job, 1.0, "done")
