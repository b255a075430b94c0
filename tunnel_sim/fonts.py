"""Font lookup for printed labels: real TrueType fonts from Debian packages or matplotlib.

Labels are drawn with the fonts real packaging uses (sans, serif, mono, CJK) so that an OCR
model that reads the simulator has a chance on real prints. Nothing is downloaded: the
Debian packages `fonts-dejavu-core`, `fonts-liberation` and `fonts-noto-cjk` are installed by
`deploy/system-deps.sh`, and matplotlib's wheel carries DejaVu as a fallback for Latin text.
"""

from __future__ import annotations

from functools import cache, lru_cache
from pathlib import Path

from PIL import ImageFont

_SYSTEM_DIRS = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/truetype/liberation"),
    Path("/usr/share/fonts/opentype/noto"),
)

FAMILIES: dict[str, tuple[str, ...]] = {
    "sans": ("LiberationSans-Regular.ttf", "DejaVuSans.ttf"),
    "sans-bold": ("LiberationSans-Bold.ttf", "DejaVuSans-Bold.ttf"),
    "dejavu": ("DejaVuSans.ttf",),
    "dejavu-bold": ("DejaVuSans-Bold.ttf",),
    "serif": ("LiberationSerif-Regular.ttf", "DejaVuSerif.ttf"),
    "serif-bold": ("LiberationSerif-Bold.ttf", "DejaVuSerif-Bold.ttf"),
    "mono": ("LiberationMono-Regular.ttf", "DejaVuSansMono.ttf"),
    "mono-bold": ("DejaVuSansMono-Bold.ttf", "LiberationMono-Bold.ttf"),
    "cjk": ("NotoSansCJK-Regular.ttc",),
    "cjk-bold": ("NotoSansCJK-Bold.ttc", "NotoSansCJK-Regular.ttc"),
}
"""Font family name -> candidate file names, best first."""

CJK_INDEX = {"ja": 0, "ko": 1, "zh": 2}
"""Face index inside the Noto CJK collection per language (glyph shapes differ by region)."""

LATIN_FAMILIES = ("sans", "sans-bold", "dejavu", "dejavu-bold", "serif", "serif-bold", "mono", "mono-bold")


class FontNotFound(RuntimeError):
    """No file for a font family is installed; the message says which package provides it."""


def _search_dirs() -> list[Path]:
    dirs = list(_SYSTEM_DIRS)
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:  # pragma: no cover - matplotlib is a project dependency
        pass
    return dirs


@cache
def font_path(family: str) -> Path:
    """The first installed file for a family."""
    if family not in FAMILIES:
        raise KeyError(f"unknown font family {family!r}; choose from {sorted(FAMILIES)}")
    for name in FAMILIES[family]:
        for folder in _search_dirs():
            candidate = folder / name
            if candidate.exists():
                return candidate
    hint = "fonts-noto-cjk" if family.startswith("cjk") else "fonts-dejavu-core / fonts-liberation"
    raise FontNotFound(f"no font file for {family!r} ({', '.join(FAMILIES[family])}); install {hint}")


def family_for(language: str, *, bold: bool = False, preferred: str = "sans") -> str:
    """A family that has glyphs for the language (CJK needs Noto)."""
    if language in CJK_INDEX:
        return "cjk-bold" if bold else "cjk"
    base = preferred.removesuffix("-bold")
    return f"{base}-bold" if bold else base


@lru_cache(maxsize=256)
def get_font(family: str, size: int, language: str = "en") -> ImageFont.FreeTypeFont:
    """A loaded font, cached per process because loading a TrueType file costs milliseconds."""
    index = CJK_INDEX.get(language, 0) if family.startswith("cjk") else 0
    return ImageFont.truetype(str(font_path(family)), max(4, int(size)), index=index)


def needs_cjk(text: str) -> bool:
    """True if the text has characters Latin fonts lack (kana, kanji, hangul)."""
    return any(ord(ch) >= 0x2E80 for ch in text)
