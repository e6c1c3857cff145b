"""``radlens dataset build INPUT... --out DIR``: folders of scans → a training dataset.

Prints the data-quality report and the split counts; unreadable inputs are listed and the
rest still builds. torch is imported only while the slices are resized.
"""

from __future__ import annotations

import argparse
from typing import Any

from inference.cli.progress_bar import TerminalProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    build = sub.add_parser(
        "build",
        help="build a slice dataset from folders of scans, a labels CSV or generated phantoms",
        description="Build a slice dataset (manifest.json + .npy arrays). Without --labels, a path component "
        "named `normal` labels a volume 0 and anything else 1; --insert-lesions makes balanced "
        "positives and negatives by inserting simulated lesions instead.",
    )
    build.add_argument("inputs", nargs="*", metavar="INPUT", help="folders or image files (only read, never written)")
    build.add_argument("--out", required=True, help="dataset folder to write")
    build.add_argument("--labels", metavar="CSV", help="labels CSV: path or series_uid, label (0/1), optional mask")
    build.add_argument("--size", type=int, nargs="+", default=[224], metavar="N", help="slice size: N or H W")
    build.add_argument(
        "--window", type=float, nargs=2, default=[-600.0, 1500.0], metavar=("C", "W"), help="window centre and width"
    )
    build.add_argument("--context", type=int, default=1, help="neighbour slices on each side as channels (2.5-D)")
    build.add_argument(
        "--split", type=float, nargs=3, default=[0.7, 0.15, 0.15], metavar=("TRAIN", "VAL", "TEST"), help="by source"
    )
    build.add_argument(
        "--insert-lesions",
        metavar="KIND[,KIND]",
        help="insert simulated lesions: solid, part-solid, mass (absolute HU; in the lungs where there are any), "
        "hyperdense, hypodense (contrast against the local soft tissue); several kinds are mixed at random",
    )
    build.add_argument("--per-volume", type=int, default=1, help="simulated lesions per volume")
    build.add_argument(
        "--variants",
        type=int,
        default=1,
        help="with --insert-lesions: use every volume N times, each with other lesions (kept in one split)",
    )
    build.add_argument("--phantoms", type=int, default=0, help="add N generated chest phantoms")
    build.add_argument(
        "--phantom-vessels",
        action="store_true",
        help="draw pulmonary vessel trees in the phantoms' lungs (hard negatives for a nodule model)",
    )
    build.add_argument(
        "--pseudo-ct",
        nargs=3,
        metavar=("T1", "BRAIN_MASK", "N"),
        help="add N CT-like heads made from an MRI T1 head and its brain mask (e.g. Colin27 from mricron-data)",
    )
    build.add_argument(
        "--pseudo-ct-deform",
        type=float,
        default=0.0,
        metavar="MM",
        help="bend each pseudo-CT head's brain by a smooth random displacement of up to MM (ventricles and sulci "
        "take other shapes; default 0: Colin27's own anatomy)",
    )
    build.add_argument(
        "--pseudo-ct-atrophy",
        type=float,
        default=0.0,
        metavar="MM",
        help="widen each pseudo-CT head's sulci and ventricles by a random ¼…1 × MM, as in older heads "
        "(default 0: Colin27's young-adult CSF spaces)",
    )
    build.add_argument(
        "--pseudo-ct-calcifications",
        action="store_true",
        help="calcify each pseudo-CT head's pineal gland, choroid plexus, falx and basal ganglia at random, as in "
        "most adults' CT (sites in MNI space: the T1 must be MNI-aligned, as Colin27 is)",
    )
    build.add_argument(
        "--whole-stacks",
        action="store_true",
        help="keep every slice of every volume in order (to train the CNN + RNN or the 3-D U-Net) instead of "
        "sampling positives and negatives",
    )
    build.add_argument("--positives-per-source", type=int, default=None, help="at most N positive slices per source")
    build.add_argument("--negatives-per-source", type=int, default=None, help="at most N negative slices per source")
    build.add_argument("--seed", type=int, default=0, help="seed of the split, sampling and simulated lesions")


def format_counts(manifest: dict[str, Any]) -> str:
    lines = ["split       sources  positives  negatives  slices"]
    for split, c in manifest["counts"].items():
        lines.append(f"{split:<10} {c['sources']:>8} {c['positives']:>10} {c['negatives']:>10} {c['total']:>7}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from inference.training.dataset_format import DatasetError, read_dataset
    from inference.training.quality import format_report

    if getattr(args, "dataset_command", None) != "build":
        print("usage: radlens dataset build INPUT... --out DIR  (see radlens dataset build --help)")
        return 2
    from inference.training.build_dataset import build_dataset
    from inference.training.dataset_spec import DatasetSpec, LesionInsertion, PseudoCtHeads

    if len(args.size) not in (1, 2):
        raise DatasetError("--size takes one number (square) or two (height width)")
    size = (args.size[0], args.size[0]) if len(args.size) == 1 else (args.size[0], args.size[1])
    insertion = None
    if args.insert_lesions:
        kinds = tuple(args.insert_lesions.split(","))
        insertion = LesionInsertion(kinds, per_volume=args.per_volume, variants=args.variants)
    heads = None
    if args.pseudo_ct:
        t1, brain, count = args.pseudo_ct
        heads = PseudoCtHeads(
            t1, brain, int(count), args.pseudo_ct_deform, args.pseudo_ct_atrophy, args.pseudo_ct_calcifications
        )
    spec = DatasetSpec(
        args.inputs,
        labels=args.labels,
        size=size,
        window=(args.window[0], args.window[1]),
        context_slices=args.context,
        split=(args.split[0], args.split[1], args.split[2]),
        seed=args.seed,
        lesion_insertion=insertion,
        phantoms=args.phantoms,
        phantom_vessels=args.phantom_vessels,
        pseudo_ct=heads,
        positives_per_source=args.positives_per_source,
        negatives_per_source=args.negatives_per_source,
        whole_stacks=args.whole_stacks,
    )
    out = build_dataset(spec, args.out, on_progress=TerminalProgress())
    dataset = read_dataset(out)
    manifest = dataset.manifest
    print(format_report(manifest["quality"]))
    print(format_counts(manifest))
    h, w = dataset.size
    print(f"wrote {len(dataset.labels)} slices ({dataset.images.shape[1]} channel(s), {h}×{w})")
    print(f"dataset: {out}")
    return 0
