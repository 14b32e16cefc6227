"""Readers for the two Debian sound packages the demo dataset is built from.

- sonic-pi-samples: FLAC files in /usr/share/sonic-pi/samples; each file's author, source and licence
  are stated in the package's machine-readable /usr/share/doc/sonic-pi-samples/copyright.
- openttd-opensfx: one `opensfx.cat` file. Its layout (catcodec's): a table of little-endian
  (uint32 offset | 0x80000000, uint32 size) pairs, as many as the first offset / 8; at each offset one
  length byte, a NUL-terminated caption ("Title". Original "file" by "author". License: ...), then
  `size` bytes of a RIFF WAV file. Empty placeholder entries (a 44-byte WAV header) are skipped.
"""
from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cache.errors import UserError

SONIC_PI_PACKAGE = "sonic-pi-samples"
SONIC_PI_DIR = Path("/usr/share/sonic-pi/samples")
SONIC_PI_COPYRIGHT = Path("/usr/share/doc/sonic-pi-samples/copyright")
OPENSFX_PACKAGE = "openttd-opensfx"
OPENSFX_CAT = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
# The OpenSFX readme (/usr/share/doc/openttd-opensfx/readme.txt.gz, section 1.1) licenses the sounds as a set.
OPENSFX_SET_LICENSE = "CC-BY-SA-3.0 (OpenSFX readme, section 1.1)"


def missing_package(package: str, path: Path) -> UserError:
    return UserError(f"{path}: not found; the Debian package {package} provides it "
                     f"(install it with `apt-get install {package}`)")


def package_version(package: str) -> str:
    """The installed Debian version of `package`, or 'unknown' where dpkg cannot say."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass(frozen=True)
class SampleLicense:
    copyright: str
    source: str
    license: str


def sonic_pi_licenses(copyright_file: Path = SONIC_PI_COPYRIGHT) -> dict[str, SampleLicense]:
    """File name (e.g. 'tabla_ghe1.flac') -> its own stanza of the Debian copyright file.

    Files without a stanza of their own fall under the package-wide `Files: *` stanza (MIT, not CC0);
    they are absent here, so callers can keep to the clips with an explicit licence.
    """
    if not copyright_file.is_file():
        raise missing_package(SONIC_PI_PACKAGE, copyright_file)
    out: dict[str, SampleLicense] = {}
    for stanza in copyright_file.read_text(encoding="utf-8", errors="replace").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
            if m:
                key = m.group(1)
                fields[key] = m.group(2).strip()
            elif key and line.startswith(" "):
                fields[key] = (fields[key] + " " + line.strip()).strip()
        for f in fields.get("Files", "").split():
            if f.startswith("etc/samples/"):
                out[f.rsplit("/", 1)[1]] = SampleLicense(fields.get("Copyright", ""), fields.get("Source", ""),
                                                         fields.get("License", ""))
    return out


@dataclass(frozen=True)
class SoundEffect:
    index: int
    caption: str
    wav: bytes

    @property
    def title(self) -> str:
        m = re.match(r'\s*"([^"]+)"', self.caption)
        return m.group(1) if m else self.caption

    @property
    def original(self) -> str:
        """The source recording it was edited from (several effects share one), else its own title."""
        m = re.search(r'Original "([^"]+)"', self.caption)
        return m.group(1) if m else self.title

    @property
    def license(self) -> str:
        m = re.search(r"License: ([^.]+(?:\.\d[^.]*)?)", self.caption)
        return m.group(1).strip() if m else ""


def read_opensfx(cat_file: Path = OPENSFX_CAT) -> list[SoundEffect]:
    if not cat_file.is_file():
        raise missing_package(OPENSFX_PACKAGE, cat_file)
    data = cat_file.read_bytes()

    def bad(why: str) -> UserError:
        return UserError(f"{cat_file}: not an OpenSFX sample catalogue ({why}); reinstall {OPENSFX_PACKAGE}")

    if len(data) < 8:
        raise bad("too short")
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    if count == 0 or count * 8 > len(data):
        raise bad("bad offset table")
    effects = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        if offset >= len(data):
            raise bad(f"entry {i} starts past the end")
        name_len = data[offset]
        caption = data[offset + 1 : offset + 1 + name_len].split(b"\0", 1)[0].decode("utf-8", errors="replace")
        start = offset + 1 + name_len
        wav = data[start : start + size]
        if len(wav) != size or wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
            raise bad(f"entry {i} holds no RIFF WAV data")
        if size > 44:  # 44 bytes = a header with no samples: the set's "Unused/Nothing" placeholders
            effects.append(SoundEffect(index=i, caption=caption, wav=wav))
    return effects
