"""Rebuild configs/controls/english-words.txt, the word list of the random-words neighbor control.

Source: Debian package `wamerican` (SCOWL size 50, /usr/share/dict/american-english; `apt-get install wamerican`).
Rule: the lines made of 3 to 10 lower-case ASCII letters (no proper names, no possessives), in the file's sorted
order, every 5th of them (about 10,000 words). Deterministic: the same package version gives the same file.
Its licence (SCOWL's permission notice, with the notices of its sources) is copied beside it as
configs/controls/english-words.LICENSE from /usr/share/doc/wamerican/copyright.

    python scripts/make_word_list.py [/usr/share/dict/american-english]
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "configs" / "controls" / "english-words.txt"
WORD = re.compile(r"[a-z]{3,10}")
EVERY = 5


def main(source: str = "/usr/share/dict/american-english") -> None:
    lines = Path(source).read_text(encoding="utf-8").splitlines()
    words = [w for w in lines if WORD.fullmatch(w)][::EVERY]
    try:
        version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wamerican"], capture_output=True,
                                 text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        version = "unknown"
    header = [
        "# English words for the random-words neighbor control (`sept-pipeline neighbors control random-words`).",
        f"# Source: Debian package wamerican {version} (/usr/share/dict/american-english: SCOWL size 50 by Kevin",
        "# Atkinson, http://wordlist.aspell.net/). Rule: lines of 3-10 lower-case ASCII letters, every 5th in the",
        "# file's order (scripts/make_word_list.py). Licence: SCOWL's permission notice and the notices of its",
        "# sources, in english-words.LICENSE beside this file (Copyright 2000-2011 by Kevin Atkinson; permission",
        "# to use, copy, modify, distribute and sell ... is granted without fee, provided that the copyright",
        "# notice and this permission notice appear in all copies and supporting documentation).",
        f"# {len(words)} words, one a line; lines starting with # are comments.",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(header + words) + "\n", encoding="utf-8")
    shutil.copyfile("/usr/share/doc/wamerican/copyright", OUT.with_suffix(".LICENSE"))
    print(f"{OUT}: {len(words)} words")


if __name__ == "__main__":
    main(*sys.argv[1:])
