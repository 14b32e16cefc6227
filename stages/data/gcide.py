"""Reader for GCIDE, the GNU Collaborative International Dictionary of English, as the Debian package
`dict-gcide` installs it for dictd (no dictd server: the two files are read directly).

- /usr/share/dictd/gcide.index: one line per indexed word, `word<TAB>offset<TAB>length`; offset and length
  are written in dictd's base-64 digits (A-Z a-z 0-9 + /, most significant first) and locate an entry in the
  uncompressed text of gcide.dict.dz. A word is indexed under the entries that define it as a headword, as a
  phrase ({Sperm whale} inside "Sperm") or as another name ("called also {oboe}" inside "Hautboy"). The same
  word may point to several entries (Dog the noun, Dog the verb, Sundog...).
- /usr/share/dictd/gcide.dict.dz: dictzip, a gzip file with a random-access table in its header; gzip reads
  it whole (40 MB of text, read once). Entries are UTF-8 with a few stray bytes, read with replacement.

An entry, as the Debian package formats it from GCIDE's XML:

    Goldfinch \\Gold"finch`\\, n. [AS. goldfinc. See {Gold}, and      <- headword(s) \\pronunciation\\, part
       {Finch}.] (Zool.)                                             of speech, [etymology], (domain label)
       (a) A beautiful bright-colored European finch ({Carduelis    <- senses: "1.", "2." and/or "(a)", "(b)"
           elegans}). The name refers to ...
       [1913 Webster]                                                <- source tag closing what precedes it
       Note: ...                                                     <- notes, "Syn:" lists, quotations
       {Pine bullfinch}, the pine finch.                             <- phrase definitions

Markup: {x} marks a cross-reference or a Latin name; [ae], [=o], ["e], [imac] ... are special characters;
[1913 Webster], [Webster 1913 Suppl.], [PJC] and [WordNet 1.5] say where a definition comes from; [Obs.],
[Colloq.] are usage labels. `definitions(entry)` returns each sense and each phrase definition as plain text
with its sources. Parts of GCIDE were filled in from WordNet 1.5 (tag [WordNet 1.5]); a caller that wants
another author's words than WordNet's leaves those out.
"""
from __future__ import annotations

import functools
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError

PACKAGE = "dict-gcide"
GCIDE_DIR = Path("/usr/share/dictd")
COPYRIGHT_FILE = Path("/usr/share/doc/dict-gcide/copyright")
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

# Special characters: a mark and one or two letters (["e], [=o], [a^]) or a name ([ae], [imac]).
_NAMED = {"ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "imac": "i", "aum": "a", "add": "a", "asl": "a",
          "udd": "u", "eth": "th", "th": "th", "ng": "ng", "yogh": "y", "oo": "oo", "nbsp": " "}
ENTITY = re.compile(r"\[(?:([-'\"=~^`.,*]?)([A-Za-z]{1,2})([\^`']?)|(" + "|".join(_NAMED) + r")|(\d))\]")
TAG_LINE = re.compile(r"^\s*\[([^\]]*)\](.*)$")
SENSE_NUMBER = re.compile(r"^\s{1,8}(\d+)\.\s+")
SUB_SENSE = re.compile(r"^\s{1,12}\(([a-z])\)\s+")
POS = re.compile(r"^\s*(?:\([^)]*\)\s*)?,?\s*((?:[a-z]+\.\s*){1,3})")


def b64_number(digits: str) -> int:
    """An offset or length of gcide.index (dictd's base-64 digits, most significant first)."""
    n = 0
    for ch in digits:
        n = n * 64 + B64.index(ch)
    return n


def _entity(m: re.Match) -> str:
    if m.group(4):
        return _NAMED[m.group(4)]
    if m.group(5):
        return ""  # a footnote or superscript number
    return m.group(2)


@dataclass(frozen=True)
class Definition:
    headwords: tuple[str, ...]  # the words it defines, lower case: the entry's headwords, or the phrase's
    pos: str                    # the entry's part of speech as written ('n.', 'v. t.'; '' when none is given)
    text: str                   # the definition as plain text: markup, labels, citations removed
    raw: str                    # the block as written (entities replaced), {braces} kept
    sources: tuple[str, ...]    # the source tags of the block (or of the next tagged block of its entry)
    kind: str                   # "sense" | "phrase" | "note" | "syn" | "quote"

    @property
    def is_noun(self) -> bool:
        return not self.pos or bool(re.search(r"(^|\s)n\.", self.pos))  # n., n. pl., prop. n.

    @property
    def from_wordnet(self) -> bool:
        return any("wordnet" in s.lower() for s in self.sources)

    @property
    def is_reference(self) -> bool:
        """A pointer to another entry ("See {Tam-tam}.", "Same as {Gong}."), not a definition."""
        return bool(re.match(r"(?i)(see|same as)\b", self.text)) or not self.text


def clean(text: str) -> str:
    """Plain text of a definition block: braces, leading domain labels ("(Zool.)"), bracketed usage labels and
    source tags, and a closing citation ('"..." --Shak.') removed; spaces collapsed."""
    text = " ".join(text.split())
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\([^()]*[*\"`][^()]*\)", " ", text)  # pronunciations: (mos*ke*toz)
    text = re.sub(r'(?:"[^"]*"\s*)?--(?=[A-Z])[^"]*$', " ", text)
    text = text.replace("{", "").replace("}", "")
    text = re.sub(r"^(?:[\s.,;]*(?:(?:n|pl|a|v)\.\s*)*\([A-Z][^)]{0,40}\)\s*[,.]?)+", " ", text.lstrip(" .,;"))
    text = " ".join(text.split())
    return text.strip(" ,;:")


def _header_end(lines: list[str]) -> int:
    """Index of the first body line: the header runs while a \\pronunciation\\ or an [etymology] is open, or
    the next line goes on with another headword's pronunciation."""
    depth = slashes = 0
    for i, line in enumerate(lines):
        depth += line.count("[") - line.count("]")
        slashes += line.count("\\")
        if depth <= 0 and slashes % 2 == 0 and not (i + 1 < len(lines) and lines[i + 1].lstrip().startswith("\\")):
            return i + 1
    return len(lines)


@functools.lru_cache(maxsize=8192)
def definitions(entry: str) -> tuple[Definition, ...]:
    """Every block of one entry's text (as `Gcide.entries` returns it), in order (memoised: a long entry such as
    Dog is indexed under many words)."""
    text = ENTITY.sub(_entity, entry)
    lines = text.split("\n")
    first = " ".join(lines[:_header_end(lines)])
    headwords = tuple(h.strip().lower() for h in re.findall(r"(?:^|,\s*)([^\\,]+?)\s*\\[^\\]*\\", first))
    after = first[first.rfind("\\") + 1:] if headwords else ""
    m = POS.match(after)
    pos = " ".join(m.group(1).split()) if m else ""
    blocks: list[dict] = []
    current: dict | None = None  # the block the next line may continue
    parent = ("sense", headwords)  # what an "(a)" line is a part of: the last sense or phrase

    def start(kind: str, line: str, words: tuple[str, ...]) -> dict:
        block = {"kind": kind, "lines": [line], "tags": [], "words": words}
        blocks.append(block)
        return block

    for line in lines[_header_end(lines):]:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        tag = TAG_LINE.match(line)
        if not stripped or tag:
            if tag and blocks:
                blocks[-1]["tags"].append(tag.group(1).strip())
            if tag and tag.group(2).strip():
                break  # text after an entry's last tag is the start of the next entry (the index's length)
            current = None  # a blank line or a source tag ends a block
        elif SENSE_NUMBER.match(line):
            rest = SENSE_NUMBER.sub("", line)
            current = start("sense", SUB_SENSE.sub("", " " + rest), headwords)  # "1. (a) ..." on one line
            parent = ("sense", headwords)
        elif SUB_SENSE.match(line) and (current is None or current["kind"] in ("sense", "phrase")):
            current = start(parent[0], SUB_SENSE.sub("", line), parent[1])
        elif stripped.startswith(("Note:", "Syn:")):
            current = start(stripped[:4].lower(), stripped[5:], headwords)
        elif stripped.startswith("{") and current is None:
            m = re.match(r"((?:\{[^}]*\}(?:\s*,?\s*(?:or\s+)?)?)+)(.*)", stripped)
            words = tuple(w.strip().lower() for w in re.findall(r"\{([^}]*)\}", m.group(1)))
            current = start("phrase", m.group(2), words)
            parent = ("phrase", words)
        elif current is not None:
            current["lines"].append(line)
        elif indent >= 9:
            current = start("quote", line, headwords)
        else:  # a paragraph of an entry without sense numbers
            current = start("sense", line, headwords)
            parent = ("sense", headwords)
    out: list[Definition] = []
    tags: list[str] = []
    for block in reversed(blocks):  # a block without a tag has the sources of the next tagged one
        tags = block["tags"] or tags
        raw = " ".join(" ".join(block["lines"]).split())
        body = re.sub(r"^[\s.,]*(?:\([A-Z][^)]{0,40}\)\s*)*[,.]?\s*", "", raw) if block["kind"] == "phrase" else raw
        out.append(Definition(headwords=block["words"], pos=pos, text=clean(body), raw=raw, sources=tuple(tags),
                              kind=block["kind"]))
    return tuple(out[::-1])


class Gcide:
    """The dictionary in memory: `entries(word)` are the texts of the entries gcide.index lists for it."""

    def __init__(self, folder: Path = GCIDE_DIR):
        folder = Path(folder)
        index, data = folder / "gcide.index", folder / "gcide.dict.dz"
        for path in (index, data):
            if not path.is_file():
                raise UserError(f"{path}: not found; the Debian package {PACKAGE} provides it "
                                f"(install it with `apt-get install {PACKAGE}`)")
        self.index: dict[str, list[tuple[int, int]]] = {}
        with open(index, encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                fields = line.rstrip("\n").split("\t")
                try:
                    where = (b64_number(fields[1]), b64_number(fields[2]))
                except (IndexError, ValueError):
                    raise UserError(f"{index} line {number}: not a dictd index line (word<TAB>offset<TAB>length "
                                    f"in base-64 digits); reinstall {PACKAGE}") from None
                self.index.setdefault(fields[0].lower(), []).append(where)
        try:
            with gzip.open(data) as fh:
                self.data = fh.read()
        except (OSError, EOFError) as e:
            raise UserError(f"{data}: not readable as gzip/dictzip ({e}); reinstall {PACKAGE}") from None

    def entries(self, word: str) -> list[str]:
        """The entries indexed under `word` (case-insensitive), in the index's order, each once."""
        seen, out = set(), []
        for offset, length in self.index.get(word.lower(), []):
            if offset not in seen:
                seen.add(offset)
                out.append(self.data[offset:offset + length].decode("utf-8", errors="replace"))
        return out
