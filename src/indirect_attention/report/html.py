"""A self-contained HTML page from the report's markdown: figures inlined, nothing fetched.

The converter understands exactly what :mod:`.markdown` writes: ``#`` headings, pipe tables (with
``\\|`` for a literal pipe), image lines ``![title](path.png)``, fenced code blocks, ``- `` lists,
paragraphs, and inline ``code``, ``**bold**`` and ``[text](link)``. Every image is read from disk
and embedded as ``data:image/png;base64``; links are rendered as text, so the page loads no
resource from anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ..training import atomic_write_text

__all__ = ["markdown_to_html", "write_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
th { background: #f2f2f2; }
code { background: #f4f4f4; padding: 0 3px; }
pre { background: #f4f4f4; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; border: 1px solid #ddd; }
figure { margin: 1em 0; }
figcaption { font-size: 0.85em; color: #555; }
.v-confirmed, .v-met, .v-passed { color: #176b1a; }
.v-contradicted, .v-not-met, .v-failed { color: #a61b1b; }
.v-inconclusive { color: #44546a; }
.v-not-comparable { color: #8a6d00; }
"""
_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<path>[^)]+)\)$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.*)$")
_VERDICT = re.compile(
    r"<strong>(confirmed|contradicted|inconclusive|not comparable|met|not met|passed|failed)"
    r"</strong>"
)


def _inline(text: str) -> str:
    """Escape ``text`` and apply code spans, bold and links (as plain text)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part)
        escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
        escaped = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r"\1 (<code>\2</code>)", escaped)
        out.append(escaped)
    joined = "".join(out)
    return _VERDICT.sub(
        lambda m: f'<strong class="v-{m.group(1).replace(" ", "-")}">{m.group(1)}</strong>', joined
    )


def _cells(line: str) -> list[str]:
    """Split a pipe-table row on unescaped pipes; ``\\|`` becomes a literal pipe."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def _image(alt: str, path: str, base: Path) -> str:
    file = (base / path).resolve()
    if not file.is_file():
        return f"<p><em>missing figure: {html.escape(path)}</em></p>"
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def _table(rows: list[str]) -> str:
    header, body = _cells(rows[0]), [_cells(row) for row in rows[2:]]
    out = ["<table>", "<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join([*out, "</table>"])


def markdown_to_html(text: str, *, base: Path, title: str) -> str:
    """Convert the report's markdown to a standalone HTML document.

    Args:
        text: Markdown as written by :mod:`.markdown`.
        base: Folder that image paths are relative to.
        title: The page title.
    """
    lines, blocks, index = text.splitlines(), [], 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            end = index + 1
            while end < len(lines) and not lines[end].strip().startswith("```"):
                end += 1
            blocks.append(
                f"<pre><code>{html.escape(chr(10).join(lines[index + 1 : end]))}</code></pre>"
            )
            index = end + 1
            continue
        if stripped.startswith("|"):
            flush()
            end = index
            while end < len(lines) and lines[end].strip().startswith("|"):
                end += 1
            blocks.append(_table([row.strip() for row in lines[index:end]]))
            index = end
            continue
        if stripped.startswith("- "):
            flush()
            items = []
            while index < len(lines) and lines[index].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[index].strip()[2:])}</li>")
                index += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
            continue
        heading, image = _HEADING.match(stripped), _IMAGE.match(stripped)
        if heading:
            flush()
            level = len(heading.group("hashes"))
            blocks.append(f"<h{level}>{_inline(heading.group('text'))}</h{level}>")
        elif image:
            flush()
            blocks.append(_image(image.group("alt"), image.group("path"), base))
        elif not stripped or stripped.startswith("<!--"):
            flush()
        else:
            paragraph.append(stripped)
        index += 1
    flush()
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def write_html(markdown_path: Path, html_path: Path, *, title: str) -> Path:
    """Convert ``markdown_path`` (images relative to its folder) and write ``html_path``."""
    text = markdown_path.read_text(encoding="utf-8")
    page = markdown_to_html(text, base=markdown_path.parent, title=title)
    return atomic_write_text(html_path, page)
