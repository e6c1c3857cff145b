"""Whether a MONAI bundle's configuration names only MONAI and PyTorch: checked before any of it runs.

A bundle's JSON/YAML config is code: ``_target_`` names any importable class or function, and a
string starting with ``$`` is a Python expression MONAI evaluates. RadLens runs a bundle only when
every ``_target_`` is a MONAI or PyTorch component (or a bare name MONAI resolves among its own),
and every expression is built from MONAI, PyTorch, NumPy, a few harmless built-ins, the standard
modules bundles use to list files (``glob``, ``os.path``) and references to the config's own
items (``@id``). Anything else — another module, ``os.system``, ``open``, ``eval``, a dunder
attribute — makes the bundle untrusted: it is refused unless the user says they trust it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["ALLOWED_MODULES", "unsafe_config_items"]

#: Roots a ``_target_`` or an expression may name.
ALLOWED_MODULES = frozenset({"monai", "torch", "numpy", "np"})
#: Standard modules a bundle may import to find its files (only ``os.path`` of ``os``).
_LISTING_MODULES = frozenset({"glob", "os"})
_BUILTINS = frozenset(
    {
        "list", "tuple", "dict", "set", "sorted", "len", "range", "min", "max", "sum", "abs", "round",
        "int", "float", "str", "bool", "zip", "enumerate", "isinstance", "print", "True", "False", "None",
        "setattr",  # torch.backends.cudnn.benchmark = ... is written as setattr(torch.backends.cudnn, ...)
    }
)  # fmt: skip
_FORBIDDEN_NAMES = frozenset({"eval", "exec", "compile", "open", "__import__", "getattr", "globals", "locals", "vars"})
_REF = re.compile(r"@[\w#:]+")
#: Dotted names that unpickle, download or compile code, though under an allowed root.
_FORBIDDEN_DOTTED = (
    "torch.load", "torch.hub", "torch.package", "torch.serialization", "torch.utils.cpp_extension",
    "numpy.load", "np.load", "monai.bundle", "monai.apps",
)  # fmt: skip


def _strings(node: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (location, key, value) of the config tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}#{key}" if where else str(key)
            yield here, str(key), value
            yield from _strings(value, here)
    elif isinstance(node, list):
        for n, value in enumerate(node):
            here = f"{where}#{n}"
            yield here, str(n), value
            yield from _strings(value, here)


def _forbidden(dotted: str) -> bool:
    return any(dotted == f or dotted.startswith(f + ".") for f in _FORBIDDEN_DOTTED)


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _target_ok(target: str) -> bool:
    if target.startswith("$") or target.startswith("@") or _forbidden(target):
        return False
    root = target.split(".")[0]
    return "." not in target or root in ALLOWED_MODULES  # a bare name: looked up in MONAI's own modules


def _expression_problem(expr: str) -> str | None:
    """Why ``expr`` (without its ``$``) is not allowed, or None."""
    source = _REF.sub("_ref_", expr).strip()
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        return f"not a Python expression ({exc.msg})"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.split(".")[0] not in ALLOWED_MODULES | _LISTING_MODULES]
            if bad:
                return f"imports {', '.join(bad)}"
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] not in ALLOWED_MODULES | _LISTING_MODULES:
                return f"imports from {node.module}"
        elif isinstance(node, ast.Attribute):
            if node.attr.startswith("__"):
                return f"uses the attribute {node.attr}"
            if _forbidden(_dotted(node)):
                return f"uses {_dotted(node)}"
            if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr != "path":
                return f"uses os.{node.attr}"
        elif isinstance(node, ast.Name):
            if node.id in _FORBIDDEN_NAMES:
                return f"calls {node.id}"
            allowed = ALLOWED_MODULES | _LISTING_MODULES | _BUILTINS | {"_ref_"}
            if node.id not in allowed and not isinstance(node.ctx, ast.Store) and not _bound_in(tree, node.id):
                return f"uses the name {node.id}"
        elif not isinstance(node, _ALLOWED_NODES):
            return f"uses Python's {type(node).__name__}"
    return None


def _bound_in(tree: ast.AST, name: str) -> bool:
    """Whether ``name`` is a comprehension or lambda variable of the expression."""
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension) and any(
            isinstance(t, ast.Name) and t.id == name for t in ast.walk(node.target)
        ):
            return True
        if isinstance(node, ast.Lambda) and any(a.arg == name for a in node.args.args):
            return True
    return False


_ALLOWED_NODES = (
    ast.Module, ast.Expr, ast.Expression, ast.Import, ast.ImportFrom, ast.alias, ast.Call, ast.keyword,
    ast.Attribute, ast.Name, ast.Load, ast.Store, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set,
    ast.Subscript, ast.Slice, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.ListComp,
    ast.DictComp, ast.SetComp, ast.GeneratorExp, ast.comprehension, ast.Lambda, ast.arguments, ast.arg,
    ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.JoinedStr, ast.FormattedValue, ast.Starred,
)  # fmt: skip


def unsafe_config_items(config: Any) -> list[str]:
    """Every item of a parsed bundle config that could run code outside MONAI and PyTorch, each
    as ``"location: reason"``; empty when the bundle is safe to run."""
    problems = []
    for where, key, value in _strings(config):
        if not isinstance(value, str):
            continue
        if key == "_target_" and not _target_ok(value):
            problems.append(f"{where}: _target_ {value!r} is not a MONAI or PyTorch component")
        elif value.startswith("$"):
            why = _expression_problem(value[1:])
            if why:
                problems.append(f"{where}: the expression {value[:80]!r} {why}")
    return problems
