"""Reader for WordNet 3.0's noun database as the Debian package `wordnet-base` installs it.

data.noun record (wndb(5)), one synset per line, fields separated by single spaces:

    synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [ptr ...] | gloss

w_cnt is two hexadecimal digits, p_cnt three decimal digits; a pointer is `symbol offset pos source/target`
(`@` hypernym, `~` hyponym, `@i`/`~i` instance links, `+` derivationally related form, ...). source/target
is four hexadecimal digits: 0000 for a semantic pointer (synset to synset), else the number (from 1) of the
source word in this synset and of the target word in the target synset, a lexical pointer (`+` always is).
The target's pos (n, v, a, s, r) names the file that holds it: data.noun, data.verb, data.adj (a and s),
data.adv; the same record format, adjectives' words may carry a syntactic marker such as `(a)`. A word is
written with underscores for spaces. Lines that start with two spaces are the licence header. The offset is
the byte offset of the line in its file, which makes it WordNet's stable id of a synset within one version
and part of speech. <pos>.exc lists irregular inflections, one 'inflected base' pair a line.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError

PACKAGE = "wordnet-base"
WORDNET_DIR = Path("/usr/share/wordnet")
COPYRIGHT_FILE = Path("/usr/share/doc/wordnet-base/copyright")


@dataclass(frozen=True)
class Synset:
    offset: str  # eight digits, as written in data.noun
    lex_filenum: int
    lemmas: tuple[str, ...]  # in the record's order, underscores kept
    lex_ids: tuple[int, ...]  # each lemma's lex_id (one hex digit): with lex_filenum it makes the sense key
    hypernyms: tuple[str, ...]
    hyponyms: tuple[str, ...]  # `~` only: kinds of this thing, not named instances (`~i`)
    gloss: str
    # `+` pointers: (source word number from 1, target offset, target pos, target word number from 1)
    derivations: tuple[tuple[int, str, str, int], ...] = ()


def _parse_line(line: str, where: str) -> Synset:
    head, bar, gloss = line.partition(" | ")
    f = head.split()
    try:
        offset, lex_filenum, ss_type, w_cnt = f[0], int(f[1]), f[2], int(f[3], 16)
        lemmas = tuple(f[4 + 2 * i] for i in range(w_cnt))
        lex_ids = tuple(int(f[5 + 2 * i], 16) for i in range(w_cnt))
        k = 4 + 2 * w_cnt
        p_cnt = int(f[k])
        ptrs = [f[k + 1 + 4 * i : k + 5 + 4 * i] for i in range(p_cnt)]
    except (IndexError, ValueError):
        raise UserError(f"{where}: not a WordNet data.noun record (wndb(5) format expected)") from None
    if ss_type != "n" or len(offset) != 8 or not offset.isdigit() or any(len(p) != 4 for p in ptrs):
        raise UserError(f"{where}: not a WordNet noun synset record (wndb(5) format expected)")
    return Synset(offset=offset, lex_filenum=lex_filenum, lemmas=lemmas, lex_ids=lex_ids,
                  hypernyms=tuple(p[1] for p in ptrs if p[0] == "@" and p[2] == "n"),
                  hyponyms=tuple(p[1] for p in ptrs if p[0] == "~" and p[2] == "n"),
                  gloss=gloss.strip() if bar else "",
                  derivations=tuple((int(p[3][:2], 16), p[1], p[2], int(p[3][2:], 16)) for p in ptrs
                                    if p[0] == "+"))


def read_nouns(wordnet_dir: Path = WORDNET_DIR) -> dict[str, Synset]:
    """offset -> Synset for every noun synset of `wordnet_dir/data.noun`."""
    path = Path(wordnet_dir) / "data.noun"
    if not path.is_file():
        raise UserError(f"{path}: not found; the Debian package {PACKAGE} provides it "
                        f"(install it with `apt-get install {PACKAGE}`)")
    out: dict[str, Synset] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            if line.startswith("  ") or not line.strip():
                continue  # the licence header
            s = _parse_line(line.rstrip("\n"), f"{path} line {number}")
            out[s.offset] = s
    if not out:
        raise UserError(f"{path}: holds no noun synsets (expected WordNet's data.noun; reinstall {PACKAGE})")
    return out


DATA_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "s": "data.adj", "r": "data.adv"}
EXC_FILES = {"n": "noun.exc", "v": "verb.exc", "a": "adj.exc", "s": "adj.exc", "r": "adv.exc"}


def word_at(pos: str, offset: str, number: int, wordnet_dir: Path = WORDNET_DIR) -> str:
    """The `number`-th word (from 1) of the synset at byte `offset` of the data file of `pos`, as written
    there (underscores kept) without an adjective's syntactic marker: the target of a lexical pointer."""
    path = Path(wordnet_dir) / DATA_FILES.get(pos, "data.noun")
    try:
        with open(path, "rb") as fh:
            fh.seek(int(offset))
            fields = fh.readline().decode("utf-8", errors="replace").split(" | ")[0].split()
        if fields[0] != offset:
            raise ValueError
        word = fields[4 + 2 * (number - 1)] if 1 <= number <= int(fields[3], 16) else ""
    except (OSError, IndexError, ValueError):
        raise UserError(f"{path}: no synset record at offset {offset} (a `+` pointer of data.noun names it; "
                        f"reinstall {PACKAGE})") from None
    return word.split("(")[0] if word.endswith(")") else word


def read_exceptions(pos: str, wordnet_dir: Path = WORDNET_DIR) -> dict[str, list[str]]:
    """base form -> WordNet's irregular inflections of it (<pos>.exc: 'inflected base [base ...]')."""
    out: dict[str, list[str]] = {}
    path = Path(wordnet_dir) / EXC_FILES[pos]
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            f = line.split()
            for base in f[1:]:
                out.setdefault(base.lower(), []).append(f[0].lower())
    return out


def hyponym_closure(nouns: dict[str, Synset], root: str) -> set[str]:
    """Offsets of every transitive hyponym of `root` (not `root` itself)."""
    return _closure(nouns, root, "hyponyms")


def hypernym_closure(nouns: dict[str, Synset], offset: str) -> set[str]:
    """Offsets of every transitive hypernym of `offset` (not `offset` itself)."""
    return _closure(nouns, offset, "hypernyms")


def _closure(nouns: dict[str, Synset], start: str, links: str) -> set[str]:
    seen: set[str] = set()
    stack = list(getattr(nouns[start], links))
    while stack:
        o = stack.pop()
        if o not in seen and o in nouns:
            seen.add(o)
            stack.extend(getattr(nouns[o], links))
    return seen


def sense_key(synset: Synset, i: int) -> str:
    """The sense key of the synset's i-th lemma (senseidx(5WN): lemma%1:lex_filenum:lex_id::, lower case)."""
    return f"{synset.lemmas[i].lower()}%1:{synset.lex_filenum:02d}:{synset.lex_ids[i]:02d}::"


def read_tag_counts(wordnet_dir: Path = WORDNET_DIR) -> dict[str, int]:
    """Noun sense key -> how often the sense was tagged in WordNet's semantic concordance (cntlist.rev:
    'sense_key sense_number tag_cnt'); a sense absent there was never tagged (0)."""
    path = Path(wordnet_dir) / "cntlist.rev"
    if not path.is_file():
        raise UserError(f"{path}: not found; the Debian package {PACKAGE} provides it "
                        f"(install it with `apt-get install {PACKAGE}`)")
    out: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        f = line.split()
        if len(f) == 3 and "%1:" in f[0] and f[2].isdigit():
            out[f[0]] = int(f[2])
    return out
