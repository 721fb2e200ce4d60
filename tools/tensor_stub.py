"""Write tinytape/tensor.pyi: tensor.py's own declarations plus the methods and operators
that tinytape.ops binds onto Tensor at import (`tensor_methods()`), so that readers, IDEs
and type checkers see all of Tensor in one place.

    python tools/tensor_stub.py          # rewrite the stub
    python tools/tensor_stub.py --check  # exit 1 when it is out of date (tests do this)
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tinytape" / "tensor.py"
STUB = ROOT / "tinytape" / "tensor.pyi"

HEADER = (
    '"""Type stub of tinytape/tensor.py with the methods bound at import; written by\n'
    'tools/tensor_stub.py (run it after changing Tensor or the ops bound onto it)."""\n'
)
# names the bound ops' annotations use, and the import that provides each
ANNOTATION_IMPORTS = {
    "Any": "from typing import Any",
    "Callable": "from collections.abc import Callable",
    "Sequence": "from collections.abc import Sequence",
    "np": "import numpy as np",
}


def _stub_body(fn: ast.FunctionDef) -> list[ast.stmt]:
    """The function's docstring (if any) and `...`."""
    body: list[ast.stmt] = []
    doc = ast.get_docstring(fn, clean=False)
    if doc is not None:
        body.append(ast.Expr(ast.Constant(doc)))
    body.append(ast.Expr(ast.Constant(...)))
    return body


def _stub_statement(node: ast.stmt) -> list[ast.stmt]:
    """A module or class statement as it appears in the stub (bodies become `...`;
    `if TYPE_CHECKING:` imports are made unconditional)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.body = _stub_body(node)
        return [node]
    if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
        return node.body
    if isinstance(node, ast.Expr):  # docstrings and calls (the binding at the bottom)
        return []
    return [node]


def _literal(value: Any) -> str:
    """A default value as stub text: the literal when it is one, `...` otherwise."""
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return "..."
    return text


def _method(name: str, fn: Any) -> str:
    """`def name(self, ...)` from the signature of the op bound as that method."""
    sig = inspect.signature(fn)
    params = []
    star_done = False
    for i, p in enumerate(sig.parameters.values()):
        if i == 0:
            params.append("self")
            continue
        text = p.name
        if p.kind is p.VAR_POSITIONAL:
            text, star_done = "*" + text, True
        elif p.kind is p.VAR_KEYWORD:
            text = "**" + text
        elif p.kind is p.KEYWORD_ONLY and not star_done:
            params.append("*")
            star_done = True
        if p.annotation is not p.empty:
            text += f": {p.annotation}"
        if p.default is not p.empty:
            text += (" = " if p.annotation is not p.empty else "=") + _literal(p.default)
        params.append(text)
    ret = "" if sig.return_annotation is sig.empty else f" -> {sig.return_annotation}"
    lines = [f"    def {name}({', '.join(params)}){ret}:"]
    if fn.__doc__ and fn.__name__ != "<lambda>":
        lines.append(f'        """{fn.__doc__}"""')
    lines.append("        ...")
    return "\n".join(lines)


def render() -> str:
    """The stub's text (tinytape must be importable)."""
    from tinytape.ops import tensor_methods

    tree = ast.parse(SOURCE.read_text())
    imports, rest = [], []
    for node in tree.body:
        for stmt in _stub_statement(node):
            if isinstance(stmt, ast.ImportFrom) and stmt.module == "ops":
                continue  # the binding itself
            (imports if isinstance(stmt, (ast.Import, ast.ImportFrom)) else rest).append(stmt)
            if isinstance(stmt, ast.ClassDef) and stmt.name == "Tensor":
                cls = stmt
    cls.body = [s for node in cls.body for s in _stub_statement(node)]
    methods = tensor_methods()
    bound = "\n\n".join(_method(name, methods[name]) for name in sorted(methods))
    cls.body += ast.parse("class Bound:\n" + bound).body[0].body
    body = "\n\n".join(ast.unparse(stmt) for stmt in rest) + "\n"
    present = {alias.asname or alias.name for stmt in imports for alias in stmt.names}
    imports += [
        ast.parse(line).body[0] for name, line in ANNOTATION_IMPORTS.items() if name not in present
    ]
    return HEADER + "\n" + _import_block(imports, body) + "\n\n" + body


def _import_block(imports: list[ast.stmt], body: str) -> str:
    """The imports the stub uses, in isort's order: __future__, standard library, numpy,
    tinytape, one blank line between the groups."""
    groups: dict[int, list[tuple[int, str, str]]] = {}
    for stmt in imports:
        names = [a for a in stmt.names if re.search(rf"\b{re.escape(a.asname or a.name)}\b", body)]
        module = stmt.module or "" if isinstance(stmt, ast.ImportFrom) else stmt.names[0].name
        if isinstance(stmt, ast.ImportFrom) and module == "__future__":
            names = stmt.names
        if not names:
            continue
        stmt.names = sorted(names, key=lambda a: a.name)
        level = getattr(stmt, "level", 0)
        group = 0 if module == "__future__" else 3 if level else 2 if module == "numpy" else 1
        kind = 0 if isinstance(stmt, ast.Import) else 1
        groups.setdefault(group, []).append((kind, "." * level + module, ast.unparse(stmt)))
    return "\n\n".join("\n".join(line for *_, line in sorted(groups[g])) for g in sorted(groups))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that it is current")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # this checkout's tinytape
    text = render()
    if args.check:
        if not STUB.exists() or STUB.read_text() != text:
            print(
                f"{STUB.relative_to(ROOT)} is out of date: run python tools/tensor_stub.py",
                file=sys.stderr,
            )
            return 1
        return 0
    STUB.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
