"""Handing objects that hold large numpy arrays (volumes, results) between the batch run's
processes through shared memory instead of a pipe.

A ``ProcessPoolExecutor`` pickles its arguments and results through a pipe: for a large CT, its
heatmap and its mask that costs as much CPU on both sides as the inference itself (figures in
benchmarks/README.md, "Figures behind design choices"). Here the object is pickled with protocol
5, its contiguous arrays out of band: they are copied once into one shared-memory block, and the
receiver's arrays are views of that block (no copy). An array that already lies in a block this
process opened (the volume the loader handed over, passed on to the writer) is referenced, not
copied again.

Lifetimes: the creator of a :class:`Parcel` keeps it registered with ``multiprocessing``'s
resource tracker, so a run killed with SIGKILL leaves no block behind; the owner (the batch run)
calls :func:`release` when every process is done with it, which unlinks the blocks it created.
A receiver calls :meth:`Opened.close` when it no longer uses the arrays.

On Windows a named block disappears with the last handle to it, so the creator could not let
go of it before the receiver has it: there, parcels carry their arrays in the pickle (as the
pipe did before) and :meth:`Opened.empty` makes ordinary arrays.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import shared_memory
from typing import Any

import numpy as np
import numpy.typing as npt

_ALIGN = 64
#: Whether arrays travel through shared memory (False: inside the pickle).
SHARED = sys.platform != "win32"


@dataclass(frozen=True)
class Parcel:
    """A pickled object whose arrays wait in shared memory: small enough for any pipe."""

    payload: bytes
    spans: tuple[tuple[str, int, int], ...]  # per out-of-band buffer: (block name, offset, bytes)
    created: tuple[str, ...]  # blocks made for this parcel (unlinked by release())


def _buffer(block: shared_memory.SharedMemory) -> memoryview:
    buf = block.buf
    assert buf is not None, f"shared memory block {block.name} is closed"
    return buf


def _address(buffer: Any) -> int:
    return int(np.frombuffer(buffer, dtype=np.uint8).__array_interface__["data"][0]) if len(buffer) else 0


@dataclass
class Opened:
    """The blocks a process has mapped for the parcels it received; arrays stay valid until close()."""

    blocks: dict[str, shared_memory.SharedMemory] = field(default_factory=dict)
    owned: list[str] = field(default_factory=list)  # blocks empty() made: the owner unlinks them
    _bases: dict[str, tuple[int, int]] = field(default_factory=dict)  # name → (address, size)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
        """A new array (zeros) in a block of its own, so that a later :func:`pack` references it
        instead of copying it (the engine writes its maps straight into shared memory)."""
        dt = np.dtype(dtype)
        if not SHARED:
            return np.zeros(shape, dtype=dt)
        block = self._map(shared_memory.SharedMemory(create=True, size=max(1, int(np.prod(shape)) * dt.itemsize)))
        self.owned.append(block.name)
        return np.ndarray(shape, dtype=dt, buffer=_buffer(block))

    def attach(self, name: str) -> shared_memory.SharedMemory:
        block = self.blocks.get(name)
        if block is None:
            block = self._map(shared_memory.SharedMemory(name=name))
        return block

    def _map(self, block: shared_memory.SharedMemory) -> shared_memory.SharedMemory:
        self.blocks[block.name] = block
        self._bases[block.name] = (_address(_buffer(block)), block.size)
        return block

    def locate(self, buffer: memoryview) -> tuple[str, int] | None:
        """(block, offset) of a buffer lying inside one of the mapped blocks."""
        if not len(buffer):
            return None
        start = _address(buffer)
        for name, (base, size) in self._bases.items():
            if base <= start and start + buffer.nbytes <= base + size:
                return name, start - base
        return None

    def close(self) -> None:
        """Unmap every block (arrays that still point into one keep it mapped: it is then left to
        the garbage collector)."""
        for name, block in list(self.blocks.items()):
            try:
                block.close()
            except BufferError:
                continue
            del self.blocks[name]
            del self._bases[name]


def _locate(view: memoryview, opened: tuple[Opened | None, ...]) -> tuple[str, int] | None:
    for o in opened:
        where = o.locate(view) if o is not None else None
        if where is not None:
            return where
    return None


def pack(obj: Any, *opened: Opened | None) -> Parcel:
    """``obj`` pickled, its contiguous arrays in shared memory (those already in a block of one
    of ``opened`` referenced in place, the others copied into one new block)."""
    if not SHARED:
        return Parcel(pickle.dumps(obj, protocol=5), (), ())
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [b.raw() for b in buffers]
    found = [_locate(v, opened) for v in views]
    offsets: list[int] = []
    total = 0
    for view, where in zip(views, found, strict=True):
        offsets.append(total)
        if where is None:
            total += -(-view.nbytes // _ALIGN) * _ALIGN
    created: tuple[str, ...] = ()
    block_name = ""
    if total:
        block = shared_memory.SharedMemory(create=True, size=total)
        block_name = block.name
        created = (block_name,)
        try:
            buf = _buffer(block)
            for view, where, offset in zip(views, found, offsets, strict=True):
                if where is None:
                    buf[offset : offset + view.nbytes] = view
            del buf
        finally:
            block.close()
    spans = tuple(
        (where[0], where[1], view.nbytes) if where is not None else (block_name, offset, view.nbytes)
        for view, where, offset in zip(views, found, offsets, strict=True)
    )
    return Parcel(payload, spans, created)


def unpack(parcel: Parcel, opened: Opened) -> Any:
    """The object of ``parcel``, its arrays views of the shared blocks (mapped into ``opened``)."""
    buffers = [_buffer(opened.attach(name))[offset : offset + size] for name, offset, size in parcel.spans]
    return pickle.loads(parcel.payload, buffers=buffers)


def release(parcel: Parcel) -> None:
    """Free the blocks ``parcel`` created (call once, when no process needs them any more)."""
    unlink(parcel.created)


def unlink(names: Iterable[str]) -> None:
    """Free the named blocks (those already freed are passed over)."""
    for name in names:
        try:
            block = shared_memory.SharedMemory(name=name)
        except FileNotFoundError:
            continue
        block.close()
        block.unlink()
