"""The docs stay honest: every picture the README shows is in docs/screenshots and is
one a browser test takes; every page in docs/ is linked from the README; every guide
exists in Vietnamese and English."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_pictures_are_real_screenshots() -> None:
    readme = (ROOT / "README.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\((docs/screenshots/[^)]+)\)", readme)
    assert len(pictures) >= 4
    taken = set()
    for test in (ROOT / "tests").glob("test_*.py"):
        taken |= set(re.findall(r'artifacts_dir / "([\w-]+\.png)"', test.read_text()))
    for picture in pictures:
        assert (ROOT / picture).is_file(), picture
        assert Path(picture).name in taken, f"{picture}: no browser test takes it"


def test_every_doc_is_linked_and_every_guide_in_both_languages() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        rel = page.relative_to(ROOT).as_posix()
        assert f"]({rel})" in readme, f"{rel} is not linked from the README"
    guides = {p.name.rsplit(".", 2)[0] for p in (ROOT / "docs" / "guides").glob("*.md")}
    assert {"secretaries", "archivists", "operators"} <= guides
    for name in guides:
        for lang in ("vi", "en"):
            assert (ROOT / "docs" / "guides" / f"{name}.{lang}.md").is_file(), (name, lang)
