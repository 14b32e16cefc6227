"""`report` writes report.html: the Markdown's content as one self-contained page, every untrusted text escaped.

The runs folder puts markup into each place untrusted text reaches the report: a class name (the diagnostic's
class list), a phrase (text.templates, a config value that becomes a variant label; neighbor phrases
themselves are not in the report's text), a dataset name, a cross-dataset
target, a run folder name and a bad metrics value (quoted in the skip reason). The page is parsed with
html.parser, and opened in headless Chromium (screenshot, DOM after load).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest

from pipeline.report.build import build_report
from pipeline.report.diagnostic import CONDITIONS, Diagnosis, Pair, _markdown
from pipeline.report.html import markdown_to_html
from record_kit import make_record, write_record

SCRIPT = "<script>document.title='pwned'</script>"
ALERT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
IMG_TITLE = "<img src=x onerror=\"document.title='pwned'\">"
PAYLOADS = (SCRIPT, ALERT, IMG, IMG_TITLE)




def hostile_runs(root: Path) -> Path:
    """Base-to-new runs of a dataset named with a script, the seeds differing in a phrase-valued config key
    (so the phrase becomes the variant label), a cross run whose target is named with an <img onerror>,
    a TensorBoard events file, and a skipped run whose folder and bad value carry markup."""
    for seed, (b, n) in enumerate([(60.0, 30.0), (70.0, 40.0)], 1):
        for sept in (False, True):
            phrase = f"a dog barking {ALERT}" if seed == 1 else f"a dog barking {IMG}"
            write_record(root, f"b2n-coop{'-sept' if sept else ''}-seed{seed}",
                         config={"text": {"templates": [phrase + " {}"]}},
                         manifest={"text.templates": [phrase + " {}"]},
                         protocol="base2new", dataset=SCRIPT, method="coop", sept=sept, seed=seed,
                         base=b + sept, new=n + 2 * sept)
    write_record(root, "cross-coop-seed1", protocol="cross", dataset="esc50", method="coop", seed=1, source=80.0,
                 targets={IMG_TITLE: 40.0, "us8k": 50.0})
    events = root / "b2n-coop-seed1" / "tensorboard"
    events.mkdir()
    (events / "events.out.tfevents.1.host").write_bytes(b"not read by report")
    bad = make_record(dataset="x", base=1.0, new=1.0).to_dict()
    bad["base"]["acc"] = IMG
    (root / ("bad-run " + IMG.replace("/", ""))).mkdir()
    (root / ("bad-run " + IMG.replace("/", "")) / "metrics.json").write_text(json.dumps(bad))
    return root


def hostile_diagnostic(out: Path) -> tuple[list[str], list[Path]]:
    """The diagnostic's real Markdown for a pair whose class names carry markup (one left out)."""
    pair = Pair(SCRIPT, "coop", "base2new", 16, "", 1, Path("a"), Path("b"))
    d = Diagnosis(pair=pair, classes=[SCRIPT, "dog"], neighbors=[f"barking {IMG}", "woof"],
                  owner=np.array([0, 1]), omitted=[IMG, ALERT])
    d.numbers = {c: {"all": {"own": 0.5, "other": 0.1, "gap": 0.4}} for c in CONDITIONS}
    return [_markdown([d])], []


class Page(HTMLParser):
    """Every element, attribute and text of a page, as the browser's tokenizer would see them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all_text(self) -> str:
        return "".join(self.text)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)


@pytest.fixture()
def report(tmp_path: Path):
    runs = hostile_runs(tmp_path / "runs")
    out = tmp_path / "runs" / "report"
    result = build_report(runs, out, diagnostic=hostile_diagnostic(out))
    return result, out


def test_untrusted_text_is_shown_escaped_never_as_markup(report):
    result, out = report
    html = (out / "report.html").read_text()
    assert out / "report.html" in result.files
    page = Page(html)
    # No element came from the payloads: the only script-capable or event-bearing markup would be theirs.
    assert page.count("script") == 0
    assert all(not name.startswith("on") for _, attrs in page.tags for name in attrs), page.tags
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    assert images and all(a["src"].startswith("data:image/png;base64,") for a in images), images
    # ... and the text shows every payload literally, where the Markdown had it.
    text = page.all_text()
    for payload in PAYLOADS:
        assert payload in text, payload
    assert f'text.templates=["a dog barking {ALERT} {{}}"]' in text     # a phrase in a variant label
    assert f"Classes without stored neighbors, left out: {IMG}, {ALERT}." in text   # class names
    for payload in PAYLOADS:
        assert payload not in html  # raw, unescaped: nowhere in the file
    # Nothing leaves the page: no scheme but data: in any URL, no stylesheet or script fetched.
    for tag, attrs in page.tags:
        for name in ("href", "src"):
            if name in attrs:
                assert urlsplit(attrs[name]).scheme in ("", "data"), (tag, attrs)
    assert page.count("link") == 0


def test_page_has_the_markdowns_headings_tables_pictures_and_links(report):
    result, out = report
    md = (out / "report.md").read_text()
    page = Page((out / "report.html").read_text())
    headings = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert headings and all(h in page.text for h in headings)
    # One <table> per Markdown table (its |---| alignment line), one <tr> per Markdown table line but that one.
    align_lines = [line for line in md.splitlines() if line.startswith("| ---")]
    table_lines = [line for line in md.splitlines() if line.startswith("|")]
    assert page.count("table") == len(align_lines) >= 3
    assert page.count("tr") == len(table_lines) - len(align_lines)
    # The base-vs-new picture is the PNG `report` drew, byte for byte, inline.
    (img,) = [a for t, a in page.tags if t == "img"]
    assert base64.b64decode(img["src"].split(",", 1)[1]) == (out / "base_vs_new.png").read_bytes()
    # The TensorBoard events file is linked relative to the page, and the link leads to it.
    (href,) = [a["href"] for t, a in page.tags if t == "a"]
    assert not Path(href).is_absolute() and (out / href).resolve() == (
        out.parent / "b2n-coop-seed1" / "tensorboard" / "events.out.tfevents.1.host").resolve()


def test_links_cannot_carry_a_scheme_and_pictures_come_only_from_the_report_folder(tmp_path: Path):
    (tmp_path / "secret.png").write_bytes(b"\x89PNG outside")
    folder = tmp_path / "report"
    folder.mkdir()
    page = Page(markdown_to_html("# t\n\n- [x](javascript:alert(1))\n\n![leak](../secret.png)\n", folder))
    (href,) = [a["href"] for t, a in page.tags if t == "a"]
    assert urlsplit(href).scheme == "" and href == "javascript%3Aalert%281%29"
    assert page.count("img") == 0 and "picture not found in the report folder: ../secret.png" in page.all_text()
    # A name the file system refuses (JSON lets a dataset name hold NUL, and picture names come from them).
    nul = Page(markdown_to_html("![x](semantic_structure-a\x00b.png)\n", folder))
    assert nul.count("img") == 0 and "picture not found in the report folder" in nul.all_text()


# --- Headless Chromium -------------------------------------------------------------------------------------

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")


def chromium() -> str:
    """The headless browser; fails where set-up would have installed it (root with apt-get), skips elsewhere."""
    found = os.environ.get("SEPT_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        pytest.fail("no headless Chromium (looked for " + ", ".join(BROWSERS) + "): scripts/setup_venv.sh "
                    "installs chromium-headless-shell with apt-get here; rerun `make setup`")
    pytest.skip("no headless Chromium and no root apt-get to install it: install chromium-headless-shell "
                "(or set SEPT_CHROMIUM) to open report.html in a browser")


def browse(browser: str, profile: Path, url: str, *args: str) -> str:
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args, url]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        # What an injected alert() does: the dialog waits for a click that never comes.
        pytest.fail(f"Chromium did not finish {url} in 60 s: a script ran and opened a dialog (alert)?")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_renders_the_page_and_runs_none_of_its_text(report, tmp_path: Path):
    from PIL import Image

    browser = chromium()
    _, out = report
    url = (out / "report.html").resolve().as_uri()
    # Control: this browser, in this mode, does run an inline script that sets the title, so the check
    # below would see one of ours run.
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><html><head><title>safe</title></head><body>{SCRIPT}</body></html>")
    assert "<title>pwned</title>" in browse(browser, tmp_path / "p0", control.resolve().as_uri(), "--dump-dom")

    dom = browse(browser, tmp_path / "p1", url, "--dump-dom")
    page = Page(dom)
    title = Page(dom[dom.index("<title>"):dom.index("</title>") + 8]).all_text()
    assert title == f"Results: {out.parent}"  # an injected script would have made it 'pwned'
    assert "pwned" not in title and page.count("script") == 0
    md = (out / "report.md").read_text()
    assert page.count("table") == md.count("\n| ---") == 3  # base-to-new, cross-dataset, diagnostic
    assert SCRIPT in page.all_text() and IMG_TITLE in page.all_text()

    shot = tmp_path / "shot.png"
    browse(browser, tmp_path / "p2", url, f"--screenshot={shot}", "--window-size=1200,1600")
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (1600, 1200, 3)
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 16, len(colours)          # text, table borders, the picture: not one flat colour
    assert (pixels < 128).all(axis=2).mean() > 0.005  # some dark ink (text) on the page, not all white
