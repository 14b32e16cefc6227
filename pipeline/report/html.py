"""report.html: the report's Markdown as one self-contained page (tables and pictures inline, no network).

The page is made from report.md itself, so the two always say the same thing. Only the Markdown that
build.py and diagnostic.py write is understood: headings, paragraphs, pipe tables, bullet lists, pictures
on a line of their own, and inline `code`, **bold** and [links](path).

Class names, run names, LLM phrases and config values end up in the text and are untrusted: every text node
and attribute goes through html.escape, link targets are percent-encoded relative paths (no scheme can
survive, so no `javascript:`), pictures are read from the report folder only and inlined as data: URIs, and
a Content-Security-Policy forbids every script, so a tag that slipped through escaping still would not run.
"""
from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from pathlib import Path
from urllib.parse import quote

from cache.atomic import atomic_write_text

HTML_FILE = "report.html"
PICTURE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       background: #fff; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.7em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; overflow-wrap: anywhere; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
p, li { max-width: 80em; overflow-wrap: anywhere; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6;
       padding: .1em .3em; border-radius: 4px; }
.table { overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; white-space: nowrap; }
th { background: #eef1f5; text-align: left; }
tbody tr:nth-child(even) { background: #f8f9fb; }
.num { text-align: right; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e5e7eb; }
figcaption, .missing { color: #59636e; font-size: .9em; }
a { color: #0b5cad; }
"""
# The stylesheet is allowed by its hash: no 'unsafe-inline', nothing else may style, load or run.
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (f"default-src 'none'; img-src data:; style-src 'sha256-{_STYLE_HASH}'; "
                           "script-src 'none'; base-uri 'none'; form-action 'none'")

_IMAGE_LINE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]*)\)$")
_WHOLE_LINK = re.compile(r"^\[(?P<text>.*)\]\((?P<href>.*)\)$")
_INLINE = re.compile(r"`(?P<code>[^`]*)`|\*\*(?P<bold>.+?)\*\*|\[(?P<text>[^\]]*)\]\((?P<href>[^)\s]*)\)")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def inline(text: str) -> str:
    """One line of Markdown text as escaped HTML with `code`, **bold** and [links](path)."""
    out, at = [], 0
    for m in _INLINE.finditer(text):
        out.append(escape(text[at:m.start()]))
        if m.group("code") is not None:
            out.append(f"<code>{escape(m.group('code'))}</code>")
        elif m.group("bold") is not None:
            out.append(f"<strong>{inline(m.group('bold'))}</strong>")
        else:
            out.append(link(m.group("text"), m.group("href")))
        at = m.end()
    out.append(escape(text[at:]))
    return "".join(out)


def safe_href(href: str) -> str:
    """A relative path as a URL that can only be a relative path: ':', '?', '#' and the rest percent-encoded."""
    return escape(quote(href, safe="/"), quote=True)


def link(text: str, href: str) -> str:
    return f'<a href="{safe_href(href)}">{inline(text)}</a>'


def picture(alt: str, src: str, folder: Path) -> str:
    """A picture of the report folder inlined as a data: URI; anything else is named, not fetched."""
    try:
        path = (folder / src).resolve()
        kind = PICTURE_TYPES.get(path.suffix.lower())
        inside = kind is not None and path.is_file() and path.is_relative_to(folder.resolve())
        data = base64.b64encode(path.read_bytes()).decode("ascii") if inside else ""
    except (OSError, ValueError):  # a name the file system refuses (a NUL byte from a dataset name, say)
        inside = False
    if not inside:
        return f'<p class="missing">[picture not found in the report folder: {escape(src)}]</p>'
    return (f'<figure><img src="data:{kind};base64,{data}" alt="{escape(alt, quote=True)}">'
            f"<figcaption>{escape(alt)}</figcaption></figure>")


def split_row(line: str) -> list[str]:
    """A pipe-table row into cells; `\\|` inside a cell is a literal bar (render.markdown_table escapes it)."""
    cells = _CELL_SPLIT.split(line.strip())
    if cells and cells[0].strip() == "":
        cells = cells[1:]
    if cells and cells[-1].strip() == "":
        cells = cells[:-1]
    return [c.strip().replace("\\|", "|") for c in cells]


def is_table(lines: list[str]) -> bool:
    return (len(lines) >= 2 and all(line.startswith("|") for line in lines)
            and all(re.fullmatch(r":?-{3,}:?", c) for c in split_row(lines[1])))


def table(lines: list[str]) -> str:
    header = split_row(lines[0])
    right = [c.endswith(":") for c in split_row(lines[1])]

    def cls(i: int) -> str:
        return ' class="num"' if i < len(right) and right[i] else ""

    head = "".join(f'<th scope="col"{cls(i)}>{inline(c)}</th>' for i, c in enumerate(header))
    body = "\n".join("<tr>" + "".join(f"<td{cls(i)}>{inline(c)}</td>" for i, c in enumerate(split_row(line)))
                     + "</tr>" for line in lines[2:])
    return f'<div class="table"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def list_item(line: str) -> str:
    text = line[2:]
    whole = _WHOLE_LINK.match(text)  # a bullet that is one link (TensorBoard files): names may hold ] or (
    return f"<li>{link(whole['text'], whole['href']) if whole else inline(text)}</li>"


def block(text: str, folder: Path) -> str:
    lines = text.strip("\n").split("\n")
    first = lines[0]
    heading = re.match(r"^(#{1,4}) (.*)$", first)
    if heading and len(lines) == 1:
        level = len(heading.group(1))
        return f"<h{level}>{inline(heading.group(2))}</h{level}>"
    if is_table(lines):
        return table(lines)
    if all(line.startswith("- ") for line in lines):
        return "<ul>\n" + "\n".join(list_item(line) for line in lines) + "\n</ul>"
    image = _IMAGE_LINE.match(first)
    if image and len(lines) == 1:
        return picture(image["alt"], image["src"], folder)
    return "<p>" + " ".join(inline(line) for line in lines) + "</p>"


def markdown_to_html(markdown: str, folder: Path) -> str:
    """The page for report.md's text; pictures are looked up in `folder` (where report.md lies)."""
    blocks = [b for b in re.split(r"\n\s*\n", markdown) if b.strip()]
    title = next((b.strip()[2:] for b in blocks if b.startswith("# ")), "Report")
    body = "\n".join(block(b, Path(folder)) for b in blocks)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{escape(CONTENT_SECURITY_POLICY, quote=True)}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="referrer" content="no-referrer">\n'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")


def write_html(markdown: str, out_dir: Path) -> Path:
    """Write OUT/report.html (atomically) from the report's Markdown; returns its path."""
    target = Path(out_dir) / HTML_FILE
    atomic_write_text(target, markdown_to_html(markdown, Path(out_dir)))
    return target
