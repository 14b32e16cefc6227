"""The demo dataset: real, freely licensed recordings from two Debian packages, in PALM's layout.

    build_demo(Path("data"))  ->  data/demo/{audios/*.wav, train.csv, test.csv, attribution.csv,
                                             README.md, manifest.json}

Ten classes, 6-26 clips each (113 in all), 16 kHz mono 16-bit WAV, at most 5 s (the first 5 s). Only
clips whose licence is stated per file are used: Sonic Pi samples with their own CC0 stanza in the
Debian copyright file (a few samples fall under the package-wide MIT stanza and are left out), and
OpenSFX effects, whose captions name author and licence (the readme licenses the set CC BY-SA 3.0).

Split: per class, deterministic, about a third of the clips to test. Several OpenSFX effects are edits
of one source recording ("Original ..."); such clips are kept on one side of the split, so no recording
is heard in both train and test.

Idempotent: a complete demo (manifest.json present, same recipe, every file there with its size) is
reused. Building happens in a temp folder renamed into place, under a lock, so a crash or a second
process never leaves a half-written demo.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cache.atomic import atomic_dir
from cache.errors import UserError
from cache.fingerprint import sha256_json
from cache.lock import file_lock
from stages.data.audio import read_audio, resample, to_mono
from stages.data import sound_packages as pk

NAME = "demo"
SAMPLE_RATE = 16000
MAX_SECONDS = 5.0
TEST_FRACTION = 1 / 3
FORMAT_VERSION = 1

# class name -> Sonic Pi sample stems or stem prefixes ending in "_" (files: /usr/share/sonic-pi/samples).
SONIC_PI_CLASSES: dict[str, tuple[str, ...]] = {
    "tabla": ("tabla_",),
    "bass drum": ("bd_", "drum_bass_hard", "drum_bass_soft", "drum_heavy_kick", "elec_hollow_kick", "elec_soft_kick"),
    "snare drum": ("sn_", "drum_snare_hard", "drum_snare_soft", "elec_snare", "elec_hi_snare", "elec_lo_snare",
                   "elec_mid_snare", "elec_filt_snare"),
    "cymbal": ("drum_cymbal_", "drum_splash_"),
    "electronic blip": ("elec_beep", "elec_blip", "elec_blip2", "elec_blup", "elec_bong", "elec_chime", "elec_flip",
                        "elec_ping", "elec_plip", "elec_pop", "elec_tick", "elec_twang", "elec_twip"),
    "ambient pad": ("ambi_",),
    "synth bass": ("bass_",),
}
# class name -> OpenSFX effect titles (the quoted first words of each caption in opensfx.cat).
OPENSFX_CLASSES: dict[str, tuple[str, ...]] = {
    "airplane": ("Propeller plane start", "Early jet take off", "Mach 1+ Jet take off", "Modern jet take off",
                 "Toyland: Propeller plane take off", "Toyland: Jet take off"),
    "engine starting": ("Truck/old bus start, pull away", "Truck/old bus start, pull away with horn",
                        "Modern bus start", "Old bus start", "Toyland: Comedy bus start (1)",
                        "Toyland: Comedy bus start (2)", "Toyland: Comedy truck start (1)",
                        "Toyland: Comedy truck start (2)"),
    "animal": ("Sheep", "Cow", "Horse", "Tropical: Bird (1)", "Tropical: Bird (2)", "Tropical: Lion roar",
               "Tropical: Monkeys"),
}
DEMO_CLASSES = sorted([*SONIC_PI_CLASSES, *OPENSFX_CLASSES])


@dataclass(frozen=True)
class SourceClip:
    classname: str
    stem: str  # output file stem (unique)
    group: str  # the source recording: clips of one group share a split
    package: str
    package_version: str
    original: str  # file or catalogue entry it comes from
    credit: str  # author / source as the package states it
    license: str
    load: tuple  # ("file", path) or ("bytes", wav bytes): how to read its audio


def recipe() -> dict:
    """Everything that decides the demo's content; its hash tells a reusable demo from a stale one."""
    return {"version": FORMAT_VERSION, "sample_rate": SAMPLE_RATE, "max_seconds": MAX_SECONDS,
            "test_fraction": round(TEST_FRACTION, 6), "sonic_pi": SONIC_PI_CLASSES, "opensfx": OPENSFX_CLASSES}


def _sonic_pi_class(stem: str) -> str | None:
    for cls, rules in SONIC_PI_CLASSES.items():
        if any(stem == r or (r.endswith("_") and stem.startswith(r)) for r in rules):
            return cls
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def collect_sources(sonic_pi_dir: Path = pk.SONIC_PI_DIR, copyright_file: Path = pk.SONIC_PI_COPYRIGHT,
                    opensfx_cat: Path = pk.OPENSFX_CAT) -> list[SourceClip]:
    if not sonic_pi_dir.is_dir():
        raise pk.missing_package(pk.SONIC_PI_PACKAGE, sonic_pi_dir)
    licenses = pk.sonic_pi_licenses(copyright_file)
    sp_version = pk.package_version(pk.SONIC_PI_PACKAGE)
    clips: list[SourceClip] = []
    for f in sorted(sonic_pi_dir.glob("*.flac")):
        cls = _sonic_pi_class(f.stem)
        lic = licenses.get(f.name)
        if cls is None or lic is None or lic.license != "CC0":
            continue  # not in a demo class, or no per-file CC0 statement
        clips.append(SourceClip(cls, f"{_slug(cls)}__{f.stem}", f"sonic-pi/{f.stem}", pk.SONIC_PI_PACKAGE,
                                sp_version, f.name, f"{lic.copyright}; {lic.source}".strip("; "), lic.license,
                                ("file", str(f))))
    effects = {e.title: e for e in pk.read_opensfx(opensfx_cat)}
    sfx_version = pk.package_version(pk.OPENSFX_PACKAGE)
    for cls, titles in OPENSFX_CLASSES.items():
        for title in titles:
            e = effects.get(title)
            if e is None:
                raise UserError(f"{opensfx_cat}: no sound effect titled {title!r} (expected the OpenSFX 1.0.x "
                                f"catalogue of {pk.OPENSFX_PACKAGE}; reinstall it with `apt-get install --reinstall "
                                f"{pk.OPENSFX_PACKAGE}`)")
            clips.append(SourceClip(cls, f"{_slug(cls)}__opensfx{e.index:02d}-{_slug(title)}", f"opensfx/{e.original}",
                                    pk.OPENSFX_PACKAGE, sfx_version, f"opensfx.cat entry {e.index}: {title}",
                                    e.caption, f"{e.license}; set: {pk.OPENSFX_SET_LICENSE}", ("bytes", e.wav)))
    return clips


def split_by_group(clips: list[SourceClip], test_fraction: float = TEST_FRACTION) -> dict[str, str]:
    """stem -> 'train' | 'test'. Per class, source groups in sha256 order go to test until about
    round(n * test_fraction) clips (at least one group) are there; at least one group stays in train."""
    side: dict[str, str] = {}
    for cls in sorted({c.classname for c in clips}):
        members = [c for c in clips if c.classname == cls]
        groups: dict[str, list[SourceClip]] = {}
        for c in members:
            groups.setdefault(c.group, []).append(c)
        order = sorted(groups, key=lambda g: hashlib.sha256(f"{cls}/{g}".encode()).hexdigest())
        target = max(1, round(len(members) * test_fraction))
        n_test = 0
        for i, g in enumerate(order):
            to_test = n_test < target and i < len(order) - 1
            for c in groups[g]:
                side[c.stem] = "test" if to_test else "train"
            n_test += len(groups[g]) if to_test else 0
    return side


def _render(clip: SourceClip) -> np.ndarray:
    """The clip's first MAX_SECONDS, mono, at SAMPLE_RATE, as int16."""
    kind, what = clip.load
    if kind == "file":
        samples, rate = read_audio(what, max_seconds=MAX_SECONDS)
    else:
        import soundfile as sf

        with sf.SoundFile(io.BytesIO(what)) as fh:
            rate = fh.samplerate
            samples = to_mono(fh.read(frames=int(MAX_SECONDS * rate), dtype="float32", always_2d=True))
    x = resample(samples, rate, SAMPLE_RATE)
    return (np.clip(x, -1.0, 32767 / 32768) * 32768).round().astype(np.int16)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _readme(clips: list[SourceClip], side: dict[str, str]) -> str:
    lines = ["# sept-pipeline demo dataset", "",
             "Built by `sept-pipeline datasets prepare demo` from two Debian packages installed on this machine.",
             f"PALM's layout: audios/*.wav ({SAMPLE_RATE} Hz mono 16-bit, the first {MAX_SECONDS:g} s of each "
             "recording), train.csv and test.csv (columns path,classname).", "",
             "| class | train | test | source |", "|:--|--:|--:|:--|"]
    for cls in DEMO_CLASSES:
        members = [c for c in clips if c.classname == cls]
        n_test = sum(side[c.stem] == "test" for c in members)
        lines.append(f"| {cls} | {len(members) - n_test} | {n_test} | {members[0].package} |")
    lines += ["", "## Sources and licences", "",
              f"- {pk.SONIC_PI_PACKAGE} (Sonic Pi samples, github.com/samaaron/sonic-pi): only samples with their own "
              "`License: CC0` stanza in /usr/share/doc/sonic-pi-samples/copyright (public domain dedication; authors "
              "and freesound.org sources are listed per clip in attribution.csv).",
              f"- {pk.OPENSFX_PACKAGE} (OpenSFX, the OpenTTD base sound set): effects from opensfx.cat. Each caption "
              "names its author, original recording and licence (CC BY 3.0, CC0 or CC BY-SA 3.0); the OpenSFX readme "
              "licenses the sound set under CC BY-SA 3.0. Attribution per clip: attribution.csv.",
              "", "Clips were cut to their first seconds, mixed to mono and resampled; no other change.",
              "attribution.csv gives, for every file: class, split, package and version, original file, "
              "credit and licence.", ""]
    return "\n".join(lines)


def _is_complete(folder: Path, recipe_hash: str) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("recipe_hash") != recipe_hash or not isinstance(manifest.get("files"), dict):
        return False
    return all((folder / rel).is_file() and (folder / rel).stat().st_size == size
               for rel, size in manifest["files"].items())


def _build_into(tmp: Path, clips: list[SourceClip], recipe_hash: str, progress: bool) -> dict:
    import soundfile as sf
    from tqdm.auto import tqdm

    side = split_by_group(clips)
    (tmp / "audios").mkdir()
    rows: dict[str, list[list[str]]] = {"train": [], "test": []}
    attribution = []
    for clip in tqdm(clips, desc="demo clips", disable=not progress, leave=False):
        rel = f"audios/{clip.stem}.wav"
        sf.write(str(tmp / rel), _render(clip), SAMPLE_RATE, subtype="PCM_16")
        rows[side[clip.stem]].append([rel, clip.classname])
        attribution.append([rel, clip.classname, side[clip.stem], clip.package, clip.package_version, clip.original,
                            clip.credit, clip.license])
    for split in ("train", "test"):
        _write_csv(tmp / f"{split}.csv", ["path", "classname"], sorted(rows[split]))
    _write_csv(tmp / "attribution.csv",
               ["path", "classname", "split", "package", "package_version", "original", "credit", "license"],
               sorted(attribution))
    (tmp / "README.md").write_text(_readme(clips, side), encoding="utf-8")
    files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    manifest = {"name": NAME, "recipe_hash": recipe_hash, "recipe": recipe(), "classes": DEMO_CLASSES,
                "num_train": len(rows["train"]), "num_test": len(rows["test"]), "files": files}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def build_demo(root: str | os.PathLike, force: bool = False, progress: bool = True,
               sonic_pi_dir: Path = pk.SONIC_PI_DIR, copyright_file: Path = pk.SONIC_PI_COPYRIGHT,
               opensfx_cat: Path = pk.OPENSFX_CAT, folder_name: str = NAME) -> dict:
    """Build (or reuse) `<root>/<folder_name>` (default `<root>/demo`); returns {"path", "reused",
    "num_train", "num_test", "classes"}."""
    root = Path(root).expanduser()
    target = root / folder_name
    recipe_hash = sha256_json(recipe())
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{folder_name}.lock"):
        if target.exists() and not force:
            if _is_complete(target, recipe_hash):
                manifest = json.loads((target / "manifest.json").read_text())
                return _summary(target, manifest, reused=True)
            raise UserError(f"{target}: exists but is not a complete demo dataset of this version "
                            f"(no matching manifest.json); remove it or pass --force to rebuild it")
        clips = collect_sources(sonic_pi_dir, copyright_file, opensfx_cat)
        missing = [c for c in DEMO_CLASSES if not any(s.classname == c for s in clips)]
        if missing:
            raise UserError(f"{sonic_pi_dir}: no clips for demo class(es) {missing} (expected the samples of "
                            f"{pk.SONIC_PI_PACKAGE} 3.x)")
        if target.exists():  # --force: build beside it, then swap, so a failed build keeps the old one
            staging = Path(tempfile.mkdtemp(prefix=f".{folder_name}.", suffix=".new", dir=root))
            try:
                manifest = _build_into(staging, clips, recipe_hash, progress)
                old = target.with_name(f".{folder_name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.rename(target, old)
                os.rename(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            with atomic_dir(target) as tmp:
                manifest = _build_into(tmp, clips, recipe_hash, progress)
        return _summary(target, manifest, reused=False)


def _summary(target: Path, manifest: dict, reused: bool) -> dict:
    return {"path": str(target), "reused": reused, "num_train": manifest["num_train"],
            "num_test": manifest["num_test"], "classes": manifest["classes"]}
