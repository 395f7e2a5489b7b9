"""Code lines of the Python files under a folder: no blank lines, comments or docstrings.

The count of ``docs/architecture.md`` ("Size of the detection package")::

    python scripts/code_lines.py src/indirect_attention/detection [--files]
"""

from __future__ import annotations

import argparse
import ast
import io
import tokenize
from pathlib import Path

_SKIPPED = {
    tokenize.COMMENT,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.ENDMARKER,
}
_WITH_DOCSTRING = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def docstring_lines(source: str) -> set[int]:
    """Line numbers (1-based) taken by module, class and function docstrings."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, _WITH_DOCSTRING) and node.body:
            first = node.body[0]
            value = first.value if isinstance(first, ast.Expr) else None
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return lines


def code_lines(source: str) -> int:
    """Lines that hold at least one token of code (not a comment, not a docstring)."""
    docstrings = docstring_lines(source)
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in _SKIPPED:
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstrings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", action="store_true", help="one line per file too")
    args = parser.parse_args()
    total = raw = 0
    for path in sorted(args.folder.rglob("*.py")):
        source = path.read_text()
        count = code_lines(source)
        total, raw = total + count, raw + len(source.splitlines())
        if args.files:
            print(f"{count:6d} {path}")
    print(f"code {total} raw {raw}")


if __name__ == "__main__":
    main()
