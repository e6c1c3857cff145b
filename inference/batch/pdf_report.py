"""A PDF report per analysed stack: study header, model card summary and disclaimer, the result,
the findings, key images and geometry warnings, on A4 pages.

Drawn with ReportLab's canvas (BSD; the PDF library of the Python world): 10 ms for a report that
took matplotlib's PDF backend 120–180 ms, which made the PDF the batch writer's largest cost. Text
is set in DejaVu Sans (the TrueType files matplotlib ships), subset into the file: searchable,
copyable, Unicode included. The study header shows exactly the ``study`` items the caller
passes: under ``--anonymize`` that is the pseudonym, and nothing of the patient reaches the
PDF's metadata.
"""

from __future__ import annotations

import functools
import io
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inference import __version__
from inference.batch.dicom_file import write_output
from inference.batch.key_images import key_image_slice, slice_score
from inference.engine.interpretation import input_summary, interpret
from inference.engine.result import Finding, Result
from inference.models.card import ModelCard, Task

PAGE_IN = (8.27, 11.69)  # A4 portrait, inches
_MARGIN = 0.7  # inches on every side
_FOOTER = 0.45  # inches kept free above the bottom margin for the footer
_RED = "#b00020"
_GREY = "#555555"
_TABLE_X = (0.0, 0.05, 0.42, 0.70, 0.85)  # columns as fractions of the text width
_TABLE_HEAD = ("#", "label", "centroid LPS (mm)", "volume (mL)", "max prob.")

FONT, BOLD_FONT = "RadLens-DejaVuSans", "RadLens-DejaVuSans-Bold"

Draw = Callable[[Any], None]  # draws onto a ReportLab canvas


@dataclass
class _Flow:
    """Lays blocks top to bottom and starts a new page when the next block does not fit."""

    pages: list[list[Draw]] = field(default_factory=lambda: [[]])
    y: float = PAGE_IN[1] - _MARGIN  # inches from the bottom of the page

    @property
    def bottom(self) -> float:
        return _MARGIN + _FOOTER

    def room(self) -> float:
        return self.y - self.bottom

    def new_page(self) -> None:
        self.pages.append([])
        self.y = PAGE_IN[1] - _MARGIN

    def place(self, height: float, draw: Callable[[Any, float], None]) -> None:
        """Reserve ``height`` inches (on a new page if needed); ``draw(canvas, top)`` draws there."""
        if height > self.room() and self.pages[-1]:
            self.new_page()
        top = self.y
        self.pages[-1].append(lambda canvas: draw(canvas, top))
        self.y -= height

    def text(self, line: str, size: float = 10, *, weight: str = "normal", colour: str = "black") -> None:
        height = size * 1.45 / 72

        def draw(canvas: Any, top: float) -> None:
            _text(canvas, _MARGIN, top - size / 72, line, size, bold=weight == "bold", colour=colour)

        self.place(height, draw)

    def paragraph(self, text: str, size: float = 10, *, colour: str = "black") -> None:
        # About 0.55 em per character of DejaVu Sans: wrap to the text width.
        chars = max(20, int((PAGE_IN[0] - 2 * _MARGIN) * 72 / (size * 0.55)))
        for line in textwrap.wrap(text, chars) or [""]:
            self.text(line, size, colour=colour)

    def heading(self, text: str) -> None:
        if self.room() < 1.0:  # never leave a heading alone at the bottom of a page
            self.new_page()
        self.gap(0.12)
        self.text(text, 13, weight="bold")

    def gap(self, inches: float) -> None:
        self.y -= min(inches, max(self.room(), 0.0))


def _pt(inches: float) -> float:
    return inches * 72.0


def _text(
    canvas: Any, x: float, y: float, line: str, size: float, *, bold: bool = False, colour: str = "black"
) -> None:
    """``line`` with its baseline at (``x``, ``y``) inches from the page's bottom left."""
    from reportlab.lib.colors import toColor

    canvas.setFont(BOLD_FONT if bold else FONT, size)
    canvas.setFillColor(toColor(colour))
    canvas.drawString(_pt(x), _pt(y), line)


def _banner(flow: _Flow, text: str) -> None:
    def draw(canvas: Any, top: float) -> None:
        from reportlab.lib.colors import toColor

        width = PAGE_IN[0] - 2 * _MARGIN
        canvas.setFillColor(toColor(_RED))
        canvas.rect(_pt(_MARGIN), _pt(top - 0.42), _pt(width), _pt(0.38), stroke=0, fill=1)
        _text(canvas, _MARGIN + 0.15, top - 0.29, text, 13, bold=True, colour="white")

    flow.place(0.5, draw)


def _table_row(flow: _Flow, cells: tuple[str, ...], *, bold: bool = False) -> None:
    width = PAGE_IN[0] - 2 * _MARGIN

    def draw(canvas: Any, top: float) -> None:
        for x, cell in zip(_TABLE_X, cells, strict=True):
            _text(canvas, _MARGIN + x * width, top - 9 / 72, cell, 9, bold=bold)

    flow.place(9 * 1.5 / 72, draw)


def _finding_cells(n: int, f: Finding) -> tuple[str, ...]:
    x, y, z = f.centroid_lps
    return (
        str(n),
        f.name or f"label {f.label}",
        f"({x:.1f}, {y:.1f}, {z:.1f})",
        f"{f.volume_ml:.3f}",
        f"{f.max_probability:.3f}",
    )


def _findings(flow: _Flow, findings: list[Finding]) -> None:
    flow.heading(f"Findings ({len(findings)})")
    if not findings:
        flow.text("No finding.", 10)
        return
    for n, f in enumerate(findings, start=1):
        if n == 1 or flow.room() < 9 * 1.5 / 72:
            if n > 1:
                flow.new_page()
                flow.text("Findings (continued)", 11, weight="bold")
            _table_row(flow, _TABLE_HEAD, bold=True)
        _table_row(flow, _finding_cells(n, f))


def _key_images(flow: _Flow, paths: list[Path], result: Result) -> None:
    if not paths:
        return
    flow.new_page()
    flow.text("Key images", 13, weight="bold")
    flow.text("Heatmap and label outlines over the slice, in the viewer's orientation.", 9, colour=_GREY)
    width = PAGE_IN[0] - 2 * _MARGIN
    cell = (width - 0.3) / 2  # two images per row
    for start in range(0, len(paths), 2):
        row = paths[start : start + 2]
        captions = []
        for rank, p in enumerate(row, start=start + 1):
            k = key_image_slice(p)
            score = None if k is None else slice_score(result, k)
            text = f"{rank}. slice {k + 1}" if k is not None else f"{rank}. {p.name}"
            captions.append(text + ("" if score is None else f", probability {score:.3f}"))

        def draw(canvas: Any, top: float, images: list[Path] = row, captions: list[str] = captions) -> None:
            for n, (image, caption) in enumerate(zip(images, captions, strict=True)):
                left = _MARGIN + n * (cell + 0.3)
                # Scaled to fit the square cell, centred, aspect kept (pixels losslessly, Flate).
                canvas.drawImage(
                    str(image), _pt(left), _pt(top - cell), _pt(cell), _pt(cell), preserveAspectRatio=True, anchor="c"
                )
                _text(canvas, left, top - cell - 0.22, caption, 9)

        flow.place(cell + 0.45, draw)


def _build(study: dict[str, str], card: ModelCard, result: Result, key_images: list[Path], qa: list[str]) -> _Flow:
    flow = _Flow()
    flow.text("RadLens analysis report", 18, weight="bold")
    flow.gap(0.08)
    if card.not_for_clinical_use:
        _banner(flow, "NOT FOR CLINICAL USE")
    flow.heading("Study")
    for key, value in study.items():
        flow.paragraph(f"{key.replace('_', ' ')}: {value}", 10)
    flow.heading("Model")
    flow.text(f"{card.name} {card.version}  ({card.task.value}; {', '.join(card.modality) or 'any modality'})", 10)
    flow.paragraph(f"Intended use: {card.intended_use}", 10)
    flow.paragraph(f"Licence: {card.licence}", 10, colour=_GREY)
    if card.not_for_clinical_use:
        flow.paragraph(
            "Disclaimer: not for clinical use. This output comes from a research or demonstration model; "
            "it must not be used for diagnosis or treatment.",
            10,
            colour=_RED,
        )
    else:
        flow.paragraph("Disclaimer: the model's output supports, and does not replace, a clinician's reading.", 10)
    flow.heading("Input")
    flow.paragraph(input_summary(result).capitalize() + ".", 10, colour=_RED if result.input_warnings else "black")
    for warning in result.input_warnings:
        flow.paragraph(f"Warning: {warning}", 9, colour=_RED)
    flow.heading("Result")
    reading = interpret(result, card)
    if card.task == Task.SEGMENTATION:
        flow.text(f"{reading.headline.capitalize()}.", 11)
    elif result.study_score is None:
        flow.text("No study-level score (the model gives regions only).", 10)
    else:
        side = "at or above" if result.study_score >= card.threshold else "below"
        score = f"Study score {result.study_score:.3f}"
        flow.text(f"{score}: {side} the model's threshold {card.threshold:g} ({reading.verdict}).", 11)
    for message in result.messages:
        flow.paragraph(f"Note: {message}", 9, colour=_GREY)
    _findings(flow, result.findings)
    flow.heading("Geometry checks")
    for warning in qa or ["No geometry warning."]:
        flow.paragraph(warning, 9, colour=_RED if qa else "black")
    _key_images(flow, key_images, result)
    return flow


def write_pdf_report(
    out_path: Path,
    *,
    study: dict[str, str],
    card: ModelCard,
    result: Result,
    key_images: list[Path],
    qa: list[str],
) -> Path:
    """Write the report as an A4 PDF at ``out_path`` (atomically) and return the path.

    ``study`` items are printed as given, in order (patient or pseudonym, date, modality…);
    ``key_images`` are files named as :func:`inference.batch.key_images.key_image_name` makes
    them; ``qa`` are the geometry warnings. The PDF's metadata holds the title (model name)
    and creator only.
    """
    from reportlab.pdfgen.canvas import Canvas

    register_fonts()
    _binary_streams()
    flow = _build(study, card, result, key_images, qa)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(_pt(PAGE_IN[0]), _pt(PAGE_IN[1])), pageCompression=1)
    canvas.setTitle(f"RadLens report: {card.name} {card.version}")
    canvas.setCreator(f"RadLens {__version__}")
    canvas.setAuthor("RadLens")
    canvas.setSubject("")
    for n, page in enumerate(flow.pages, start=1):
        for draw in page:
            draw(canvas)
        footer = f"RadLens {__version__} · {card.name} {card.version} · generated {stamp}"
        _text(canvas, _MARGIN, _MARGIN, f"{footer} · page {n} of {len(flow.pages)}", 8, colour=_GREY)
        canvas.showPage()
    canvas.save()
    return write_output(out_path, buffer.getvalue(), "report")


@functools.cache
def register_fonts() -> None:
    """DejaVu Sans and its bold, from matplotlib's own font folder, registered with ReportLab once."""
    import matplotlib
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    pdfmetrics.registerFont(TTFont(FONT, str(folder / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(BOLD_FONT, str(folder / "DejaVuSans-Bold.ttf")))


@functools.cache
def _binary_streams() -> None:
    """Write images and pages as binary Flate streams, without ReportLab's ASCII85 armour: the
    armour only makes a PDF 7-bit clean, and ReportLab encodes it in pure Python unless its
    optional C accelerator is installed (a third of the report's time for three key images)."""
    from reportlab import rl_config

    rl_config.useA85 = 0
