"""Where model cards are found: the bundled resources, the user's data folder, and entry points.

Other packages ship models by declaring an entry point in the group ``radlens.models`` that
returns a folder (or a list of card paths).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import entry_points
from pathlib import Path

from inference.errors import ModelCardError, RadLensError
from inference.models.card import ModelCard, load_card
from inference.suggest import did_you_mean

__all__ = [
    "CARD_SUFFIXES",
    "ENTRY_POINT_GROUP",
    "DefaultModel",
    "ModelRequest",
    "Registry",
    "discover",
    "parse_model_request",
    "resources_dir",
    "user_models_dir",
]


class DefaultModel(Enum):
    """The registry's default model for the volume's modality, asked for as ``--model default``."""

    FOR_MODALITY = "default"


#: A model asked for by name (``name`` or ``name@version``) or as the modality's default.
ModelRequest = str | DefaultModel


def parse_model_request(text: ModelRequest) -> ModelRequest:
    """``"default"`` (any case) → :attr:`DefaultModel.FOR_MODALITY`; any other text is a model name."""
    if isinstance(text, str) and text.strip().lower() == DefaultModel.FOR_MODALITY.value:
        return DefaultModel.FOR_MODALITY
    return text


ENTRY_POINT_GROUP = "radlens.models"
CARD_SUFFIXES = (".toml", ".json")


def resources_dir() -> Path:
    """The ``resources/`` folder, in a source checkout or a PyInstaller bundle."""
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def user_models_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("radlens")) / "models"


def _cards_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in CARD_SUFFIXES and p.name.startswith("card"))


def _entry_point_paths() -> tuple[list[Path], list[str]]:
    paths: list[Path] = []
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found = ep.load()()
        except Exception as exc:  # a broken plug-in must not hide the others
            problems.append(f"entry point {ep.name}: {type(exc).__name__}: {exc}")
            continue
        for item in [found] if isinstance(found, str | Path) else list(found):
            p = Path(item)
            paths.extend(_cards_in(p) if p.is_dir() else [p])
    return paths, problems


@dataclass
class Registry:
    cards: list[ModelCard] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def get(self, name: str) -> ModelCard:
        """By ``name`` or ``name@version`` (the highest version when none is given)."""
        wanted, _, version = name.partition("@")
        matches = [c for c in self.cards if c.name == wanted and (not version or c.version == version)]
        if not matches:
            names = sorted({c.name for c in self.cards})
            hint = did_you_mean(wanted, names)
            raise RadLensError(f"no model {name!r} (known: {', '.join(names) or 'none'}){hint}")
        return max(matches, key=lambda c: tuple(int(p) if p.isdigit() else 0 for p in c.version.split(".")))

    def card_for(self, request: ModelRequest, modality: str) -> ModelCard | None:
        """The card ``request`` names (an unknown name raises, with the closest known one), or the
        default for ``modality`` (``None`` when it has none)."""
        request = parse_model_request(request)
        if isinstance(request, DefaultModel):
            return self.default_for(modality)
        return self.get(request)

    def for_modality(self, modality: str) -> list[ModelCard]:
        return [c for c in self.cards if c.accepts(modality)]

    def default_for(self, modality: str) -> ModelCard | None:
        defaults = [c for c in self.cards if modality.upper() in c.default_for]
        return defaults[0] if defaults else None


def discover(extra_dirs: list[Path] | None = None, *, include_user: bool = True) -> Registry:
    """Find every card; a broken card is listed in ``problems`` and the rest still load."""
    paths = _cards_in(resources_dir() / "models")
    if include_user:
        paths += _cards_in(user_models_dir())
    for d in extra_dirs or []:
        paths += _cards_in(Path(d))
    ep_paths, problems = _entry_point_paths()
    paths += ep_paths
    reg = Registry(problems=problems)
    seen: set[str] = set()
    for p in paths:
        try:
            card = load_card(p)
        except ModelCardError as exc:
            reg.problems.append(str(exc))
            continue
        if card.key in seen:
            continue
        seen.add(card.key)
        reg.cards.append(card)
    return reg
