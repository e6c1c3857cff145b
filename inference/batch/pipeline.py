"""``analyze(inputs, options)``: the batch run behind ``radlens analyze``.

Three stages overlap: stacks load in worker processes (``jobs`` of them, each one stack
ahead), the model runs in this process, and outputs are written by ``writers`` writer processes
while the next stacks are inferred. Volumes and results travel between them through shared
memory (:mod:`inference.batch.shared_arrays`), not through pipes. At most ``jobs`` loaded
volumes wait, one is inferred and ``writers`` are written, so memory does not grow with the
number of stacks.
Each stack's manifest is written after all its outputs, which makes the run resumable after a
kill at any moment.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import warnings
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.batch.identity import Identity, IdentityPolicy, load_or_create_key
from inference.batch.plan import Job, Plan, plan_jobs
from inference.batch.resume import (
    MANIFEST,
    input_fingerprint,
    is_complete,
    manifest_payload,
    model_fingerprint,
    remove_stale_temporaries,
)
from inference.batch.shared_arrays import Opened, Parcel, pack, release, unlink, unpack
from inference.batch.stack_outputs import DEFAULT_FORMATS, FORMATS, clear_outputs, write_stack_outputs
from inference.batch.summary import FAILED, OK, REFUSED, SKIPPED, base_row, problem_rows, result_row, write_summary
from inference.batch.worker_lifetime import init_worker
from inference.errors import LoadError, OperationCancelled, RadLensError, UnsuitableInputError
from inference.io.atomic import atomic_write
from inference.io.paths import is_within
from inference.io.stacks import Stack
from inference.models.registry import Registry, discover
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume


class BatchInputError(RadLensError):
    """The inputs or the output folder cannot be used as given."""


@dataclass(frozen=True)
class BatchOptions:
    out: Path
    model: str | None = None
    device: str = "auto"
    jobs: int = 1  # loader processes; 0 loads in this process
    writers: int = 0  # writer processes, 0: default_writers(device, jobs) (with jobs 0: one writer thread)
    formats: tuple[str, ...] = DEFAULT_FORMATS
    identity: IdentityPolicy = IdentityPolicy.DEFAULT
    overwrite: bool = False
    file_modality: str = ""  # modality of NIfTI/NRRD/MHA inputs, which do not record one
    key_images: int = 3
    force: bool = False  # run the model on stacks the input check finds unsuitable (with a note)
    cluster: str = ""  # a Ray cluster's address, or "local" (inference.batch.cluster); "": this machine's pipeline


@dataclass
class BatchReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary_csv: Path | None = None
    summary_json: Path | None = None
    elapsed_s: float = 0.0

    def count(self, status: str, resumed: bool | None = None) -> int:
        return sum(
            1 for r in self.rows if r.get("status") == status and (resumed is None or bool(r.get("resumed")) == resumed)
        )

    model_named: bool = False

    @property
    def succeeded(self) -> bool:
        """Everything asked for ran: no stack failed or was refused, every named input was usable,
        something ran, and, when the user named the model, no image stack was skipped for it."""
        failed = any(r.get("status") in (FAILED, REFUSED) for r in self.rows)
        skipped = self.model_named and any(r.get("status") == SKIPPED and r.get("folder") for r in self.rows)
        return not failed and not skipped and self.count(OK) > 0


# -- loading, in worker processes --------------------------------------------------------------


def load_for_batch(stack: Stack) -> tuple[Volume | None, float, str]:
    """Load a stack; failures come back as text (custom exceptions do not always unpickle)."""
    from inference.io.dicom_loader import load_stack

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # geometry QA travels with the volume
            volume = load_stack(stack)
    except LoadError as exc:
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {exc.reason}"
    except Exception as exc:
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:300]}"
    return volume, time.perf_counter() - t0, ""


def load_shared(stack: Stack) -> tuple[Parcel | None, float, str]:
    """:func:`load_for_batch` in a loader process: the volume comes back in shared memory."""
    volume, took, error = load_for_batch(stack)
    if volume is None:
        return None, took, error
    t0 = time.perf_counter()
    parcel = pack(volume)
    return parcel, took + time.perf_counter() - t0, ""


@dataclass
class Loaded:
    """One stack as the loader hands it over: its volume (or why there is none), the load time
    and, from a loader process, the shared memory the volume lives in."""

    volume: Volume | None
    load_s: float
    error: str
    parcel: Parcel | None = None
    opened: Opened | None = None

    def close(self) -> None:
        """Drop this process's view of the volume (its blocks are released by the run)."""
        self.volume = None
        if self.opened is not None:
            self.opened.close()


class _Loader:
    """Keeps up to ``jobs`` stacks loading ahead in worker processes (or loads inline)."""

    def __init__(self, jobs: int, stacks: list[Stack]) -> None:
        self.stacks = deque(stacks)
        self.pending: deque[Future[tuple[Parcel | None, float, str]]] = deque()
        self.pool = worker_pool(jobs) if jobs > 0 else None
        self.ahead = max(jobs, 1)
        self._fill()

    def _fill(self) -> None:
        while self.pool is not None and self.stacks and len(self.pending) < self.ahead:
            self.pending.append(self.pool.submit(load_shared, self.stacks.popleft()))

    def next(self) -> Loaded:
        if self.pool is None:
            return Loaded(*load_for_batch(self.stacks.popleft()))
        fut = self.pending.popleft()
        try:
            parcel, took, error = fut.result()
        except Exception as exc:  # the worker died (e.g. killed for memory)
            parcel, took, error = None, 0.0, f"loader process failed: {type(exc).__name__}: {str(exc)[:200]}"
        self._fill()
        if parcel is None:
            return Loaded(None, took, error)
        opened = Opened()
        try:
            volume = unpack(parcel, opened)
        except Exception as exc:
            opened.close()
            release(parcel)
            return Loaded(None, took, f"cannot receive the loaded volume: {type(exc).__name__}: {str(exc)[:200]}")
        return Loaded(volume, took, "", parcel, opened)

    def close(self) -> None:
        if self.pool is not None:
            # Queued loads are dropped; a load under way finishes (one stack) and the workers exit.
            self.pool.shutdown(wait=True, cancel_futures=True)
            for fut in self.pending:  # loaded ahead and never used: free their shared memory
                parcel = fut.result()[0] if fut.done() and not fut.cancelled() and fut.exception() is None else None
                if parcel is not None:
                    release(parcel)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Spawned worker processes that exit with this one and leave Ctrl+C to it
    (:mod:`inference.batch.worker_lifetime`)."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(os.getpid(),),
    )


# -- the run ----------------------------------------------------------------------------------


def _check_paths(inputs: list[Path], out: Path) -> None:
    for p in inputs:
        folder = p if p.is_dir() else p.parent
        if is_within(out, folder) and p.is_dir():
            raise BatchInputError(f"the output folder {out} lies inside the input {p}: RadLens never writes there")
        if p.exists() and is_within(p, out):
            raise BatchInputError(f"the input {p} lies inside the output folder {out}")


def _scan_inputs(inputs: list[Path], jobs: int, cancel: CancelToken, plan_failures: list[tuple[str, str]]) -> list[Any]:
    from inference.io.scan import scan

    scans = []
    for p in inputs:
        try:
            scans.append(scan(p, jobs=jobs or None, cancel=cancel))
        except OperationCancelled:
            raise
        except LoadError as exc:
            plan_failures.append((str(p), f"{type(exc).__name__}: {exc.reason}"))
    return scans


# -- writing, in a worker process ----------------------------------------------------------------


@dataclass(frozen=True)
class WriteTask:
    stack_dir: Path
    job: Job
    expected: dict[str, str]
    row: dict[str, Any]
    policy: IdentityPolicy
    key: bytes
    formats: tuple[str, ...]
    key_images: int


_identities: dict[tuple[IdentityPolicy, bytes], Identity] = {}


def warm_writer() -> None:
    import highdicom  # noqa: F401
    import matplotlib.backends.backend_pdf  # noqa: F401

    import inference.batch.pdf_report
    import inference.batch.seg_writer
    import inference.batch.sr_writer  # noqa: F401


def write_shared(task: WriteTask, parcel: Parcel, load_s: float, infer_s: float) -> dict[str, Any]:
    """:func:`write_stack` in the writer process, the volume and the result in shared memory."""
    opened = Opened()
    try:
        volume, result = unpack(parcel, opened)
        row = write_stack(task, volume, result, load_s, infer_s)
        del volume, result
    finally:
        opened.close()
    return row


def write_stack(task: WriteTask, volume: Volume, result: Any, load_s: float, infer_s: float) -> dict[str, Any]:
    """Write one stack's outputs, then its manifest; returns its summary row."""
    row, manifest = write_outputs(task, volume, result, load_s, infer_s)
    atomic_write(task.stack_dir / MANIFEST, manifest)
    return row


def write_outputs(
    task: WriteTask, volume: Volume, result: Any, load_s: float, infer_s: float
) -> tuple[dict[str, Any], str]:
    """Write one stack's outputs (each atomically); returns its summary row and the text of its
    manifest, which whoever records completion writes last (this process, or a cluster's driver)."""
    job = task.job
    assert job.card is not None
    t0 = time.perf_counter()
    identity = _identities.setdefault((task.policy, task.key), Identity(task.policy, task.key))
    stack_dir = task.stack_dir
    stack_dir.mkdir(parents=True, exist_ok=True)
    (stack_dir / MANIFEST).unlink(missing_ok=True)
    clear_outputs(stack_dir)
    outputs = write_stack_outputs(
        stack_dir,
        stack=job.stack,
        volume=volume,
        result=result,
        card=job.card,
        identity=identity,
        formats=task.formats,
        key_image_count=task.key_images,
    )
    from inference.engine.interpretation import interpret

    timings = {"load": load_s, "inference": infer_s, "write": time.perf_counter() - t0}
    row = result_row(dict(task.row), volume, result, timings, interpret(result, job.card).verdict)
    row["outputs"] = " ".join(outputs.files)
    row["notes"] = "; ".join(outputs.notes + list(result.messages))
    return row, manifest_payload(task.expected, stack_dir, outputs.files, row)


class _Run:
    def __init__(self, options: BatchOptions, plan: Plan, identity: Identity, on_progress: ProgressCallback) -> None:
        self.options = options
        self.plan = plan
        self.identity = identity
        self.on_progress = on_progress
        self.rows: dict[str, dict[str, Any]] = {}
        from inference.engine.session import ModelSession

        self.session = ModelSession(options.device)  # the thread count is this run's (_leave_a_core)
        # The writer is a process: PDF, SEG and PNG writing is Python-heavy, and in a thread it
        # held the GIL between the model's operations (measured: analyze 2-5x slower).
        self.writers = (options.writers or self._default_writers()) if options.jobs > 0 else 1
        self.writer: Executor = (
            worker_pool(self.writers)
            if options.jobs > 0
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="radlens-writer")
        )
        # The stacks being written, oldest first, and the shared-memory blocks to free when each is.
        self.writing: deque[tuple[Job, Future[dict[str, Any]], list[str]]] = deque()
        self.started = time.perf_counter()
        self.done = 0
        self.total = 1

    def _default_writers(self) -> int:
        from inference.engine.device import select_device

        return default_writers(select_device(self.options.device), self.options.jobs)

    def write_task(self, job: Job) -> WriteTask:
        """What a writer (a process here, a task on a cluster) needs to write ``job``'s outputs."""
        return WriteTask(
            self.options.out / job.folder,
            job,
            self.expected(job),
            base_row(job, self.identity),
            self.identity.policy,
            self.identity.key,
            self.options.formats,
            self.options.key_images,
        )

    def expected(self, job: Job) -> dict[str, str]:
        assert job.card is not None
        return {
            "input": input_fingerprint(job.stack),
            "model": model_fingerprint(job.card),
            "options": f"{sorted(self.options.formats)}|{self.identity.policy.value}|{self.options.key_images}",
        }

    def progress(self, job: Job, fraction: float, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        overall = (self.done + max(0.0, min(1.0, fraction))) / self.total
        eta = ""
        if self.done:
            left = elapsed / self.done * (self.total - self.done - fraction)
            eta = f" · ETA {int(left // 60)}:{int(left % 60):02d}"
        stack = f"{int(max(0.0, min(1.0, fraction)) * 100):3d}%"
        self.on_progress(overall, f"[{self.done + 1}/{self.total}] {job.folder} {stack} {message}{eta}")

    def model_for(self, job: Job) -> Any:
        assert job.card is not None
        return self.session.model(job.card)

    def infer(self, job: Job, loaded: Loaded, cancel: CancelToken) -> None:
        volume = loaded.volume
        assert volume is not None
        to_writer = isinstance(self.writer, ProcessPoolExecutor)
        maps = Opened() if to_writer else None  # the result's maps go straight into shared memory
        t0 = time.perf_counter()
        try:
            assert job.card is not None
            result = self.session.analyse(
                job.card,
                volume,
                stack=job.stack,
                modality=job.modality,
                model_chosen=self.options.model is not None,
                force=self.options.force,
                on_progress=lambda f, m: self.progress(job, 0.1 + 0.8 * f, m),
                cancel=cancel,
                allocate=maps.empty if maps is not None else None,
            )
        except BaseException:
            if maps is not None:
                maps.close()
                unlink(maps.owned)
            raise
        infer_s = time.perf_counter() - t0
        while len(self.writing) >= self.writers:  # a writer free for this one: memory stays bounded
            self.wait_writer()
        task = self.write_task(job)
        if maps is not None:
            # The volume's arrays lie in the loader's shared memory, the maps in this process's:
            # only what is left (small arrays) is copied.
            blocks = [*maps.owned, *(loaded.parcel.created if loaded.parcel is not None else ())]
            try:
                parcel = pack((volume, result), loaded.opened, maps)
                blocks += parcel.created
                del result
                maps.close()
                fut = self.writer.submit(write_shared, task, parcel, loaded.load_s, infer_s)
            except BaseException:  # no writer got them: free the maps' blocks (and any copy) now
                maps.close()
                unlink(blocks)
                raise
            self.writing.append((job, fut, blocks))
        else:
            self.writing.append(
                (job, self.writer.submit(write_stack, task, volume, result, loaded.load_s, infer_s), [])
            )

    def writing_job(self, job: Job) -> bool:
        return any(w[0] is job for w in self.writing)

    def wait_writer(self) -> None:
        """Wait for the oldest write in flight (if any), record its row and free its blocks."""
        if not self.writing:
            return
        job, fut, blocks = self.writing.popleft()
        try:
            self.rows[job.folder] = fut.result()
        except Exception as exc:
            self.rows[job.folder] = self.failed(job, f"writing outputs failed: {type(exc).__name__}: {exc}")
        finally:
            unlink(blocks)

    def failed(self, job: Job, reason: str) -> dict[str, Any]:
        row = base_row(job, self.identity)
        if self.identity.anonymize:
            for p in job.stack.paths[:1]:
                reason = reason.replace(p, "<input>")
        row.update(status=FAILED, error=reason)
        return row

    def execute(self, todo: list[Job], cancel: CancelToken) -> None:
        self.total = max(len(todo), 1)
        loader = _Loader(self.options.jobs, [j.stack for j in todo])
        threads = self._leave_a_core() if todo and self.options.jobs > 0 else None
        try:
            if todo and self.options.jobs > 0:
                # The writers import their libraries (highdicom, ReportLab) while the first stack
                # loads and the weights load here.
                for _ in range(self.writers):
                    self.writer.submit(warm_writer)
                self.model_for(todo[0])
            for job in todo:
                cancel.raise_if_cancelled()
                self.progress(job, 0.0, "loading")
                loaded = loader.next()
                if loaded.volume is None:
                    self.rows[job.folder] = self.failed(job, loaded.error)
                else:
                    try:
                        self.infer(job, loaded, cancel)
                    except OperationCancelled:
                        raise
                    except UnsuitableInputError as exc:
                        row = self.failed(job, "; ".join(exc.reasons) + " (--force runs it)")
                        self.rows[job.folder] = {**row, "status": REFUSED}
                    except Exception as exc:
                        self.rows[job.folder] = self.failed(job, f"{type(exc).__name__}: {str(exc)[:300]}")
                    finally:
                        if loaded.parcel is not None and not self.writing_job(job):  # no writer got it: free it now
                            release(loaded.parcel)
                        loaded.close()
                self.done += 1
        finally:
            loader.close()
            while self.writing:
                self.wait_writer()
            self.writer.shutdown(wait=True)
            if threads is not None:
                import torch

                torch.set_num_threads(threads)

    def _leave_a_core(self) -> int | None:
        """On the CPU, the model leaves a core to each writer process (the loaders are light): on
        2 cores, 20 stacks in 9.1-9.6 s with one torch thread, 12.1-12.2 s with two.
        Returns the thread count to restore afterwards."""
        import torch

        from inference.engine.device import configure_cpu_threads, select_device

        if select_device(self.options.device) != "cpu":
            return None
        before = torch.get_num_threads()
        configure_cpu_threads(leave_free=self.writers)
        return before


def analyze(
    inputs: list[Path],
    options: BatchOptions,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    registry: Registry | None = None,
) -> BatchReport:
    """Analyse every image stack under ``inputs``; write per-stack outputs and the run summary."""
    cancel = cancel or CancelToken()
    t0 = time.perf_counter()
    out = options.out.resolve()
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise BatchInputError(f"unknown format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    _check_paths([p.resolve() for p in inputs], out)
    registry = registry or discover()
    model = registry.get(options.model) if options.model else None
    if options.device != "auto":
        from inference.engine.device import select_device

        select_device(options.device)  # a missing GPU is an error before anything runs
    if options.cluster:
        from inference.batch.cluster import connect

        started_ray = connect(options.cluster)  # an address that does not answer, or no Ray: an error now
    else:
        started_ray = False
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    key = load_or_create_key(out) if options.identity == IdentityPolicy.ANONYMIZE else b"radlens"
    identity = Identity(options.identity, key)
    failures: list[tuple[str, str]] = []
    scans = _scan_inputs(inputs, options.jobs, cancel, failures)
    plan = plan_jobs(scans, registry, identity, model=model, file_modality=options.file_modality, force=options.force)
    plan.failed_inputs = failures
    run = _Run(BatchOptions(**{**options.__dict__, "out": out}), plan, identity, on_progress)
    todo: list[Job] = []
    for job in plan.runnable:
        manifest = None if options.overwrite else is_complete(out / job.folder, run.expected(job))
        if manifest is not None:
            run.rows[job.folder] = {**manifest["row"], "resumed": True}
        else:
            todo.append(job)
    try:
        if options.cluster:
            from inference.batch.cluster import execute_on_cluster

            execute_on_cluster(run, todo, cancel)
        else:
            run.execute(todo, cancel)
    finally:
        rows = [run.rows.get(j.folder) or {**base_row(j, identity), "status": SKIPPED if j.card is None else "not run"}
                for j in plan.jobs]  # fmt: skip
        rows += problem_rows(plan, identity)
        extra = {
            "identity": identity.policy.value,
            "formats": list(options.formats),
            "analysed": sum(1 for r in rows if r.get("status") == OK and not r.get("resumed")),
            "resumed": sum(1 for r in rows if r.get("resumed")),
            "refused": sum(1 for r in rows if r.get("status") == REFUSED),
            "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        csv_path, json_path = write_summary(out, rows, extra)
        if started_ray:
            import ray

            ray.shutdown()
    on_progress(1.0, f"{extra['analysed']} analysed, {extra['resumed']} already done")
    return BatchReport(rows, csv_path, json_path, time.perf_counter() - t0, model_named=options.model is not None)


def default_jobs() -> int:
    """One loader process: on small machines more would take cores from inference."""
    return 1 if (os.cpu_count() or 1) <= 4 else 2


def default_writers(device: str = "cpu", jobs: int = 1) -> int:
    """Writer processes for a run on ``device`` with ``jobs`` loaders. Writing the default formats
    costs ~3.5 times a CPU inference of the same stack (96x512^2: 285 against 78 ms with two threads,
    ``benchmarks/batch.py``) and far more than a GPU one, so the writers get most of the cores the
    loaders leave: on a GPU all but one (the main process feeds the GPU), on the CPU half (the
    model's threads take the rest, one per core left); at least 1, at most 8, as each holds one
    stack's volume and maps in shared memory (~0.2 GB at 96x512^2). On 2 cores: 1."""
    spare = max(1, (os.cpu_count() or 1) - max(jobs, 0))
    wanted = spare - 1 if device != "cpu" else spare // 2
    return max(1, min(8, wanted))
