"""A ``radlens train`` process for torchrun whose rank 0 dies right after its first checkpoint, once.

``python -m torch.distributed.run --max-restarts 1 ... ddp_crash_worker.py CONFIG MARKER``: the first
time, rank 0 writes MARKER and exits with status 3 after epoch 1's checkpoint; torchrun then restarts
every rank, and they resume from that checkpoint.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from inference.training.config import load_config
from inference.training.train import train


def main() -> None:
    config, marker = load_config(sys.argv[1]), Path(sys.argv[2])

    def on_epoch(record: dict[str, Any]) -> None:
        if record["epoch"] == 1 and not marker.exists():
            marker.write_text("rank 0 died after epoch 1\n")
            os._exit(3)

    train(config, resume=True, on_epoch=on_epoch)


if __name__ == "__main__":
    main()
