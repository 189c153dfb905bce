"""The documentation says what the code does: the permission matrix, every setting, and links
that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from plantwire.config import Settings
from plantwire.security.roles import ROLE_PERMISSIONS, Permission, Role

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MATRIX_HEADER = "| permission | " + " | ".join(role.value for role in Role) + " |"
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _matrix_rows(text: str) -> list[str]:
    """The table rows under the one header line of the permission matrix."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.strip() == MATRIX_HEADER]
    assert len(headers) == 1, f"docs/security.md needs exactly one line {MATRIX_HEADER!r}"
    start = headers[0]
    assert re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[start + 1].strip()), "no delimiter row"
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip().startswith("|"):
            break
        rows.append(line)
    return rows


def test_permission_matrix_in_security_md_equals_the_code() -> None:
    rows = _matrix_rows((DOCS / "security.md").read_text(encoding="utf-8"))
    roles = list(Role)
    documented: dict[Role, set[Permission]] = {role: set() for role in roles}
    seen: list[Permission] = []
    for row in rows:
        cells = _cells(row)
        assert len(cells) == 1 + len(roles), f"wrong number of cells: {row!r}"
        name = re.fullmatch(r"`([^`]+)`", cells[0])
        assert name is not None, f"permission not in backticks: {row!r}"
        permission = Permission(name.group(1))  # ValueError for an unknown permission
        seen.append(permission)
        for role, cell in zip(roles, cells[1:], strict=True):
            assert cell in ("✓", ""), f"cell {cell!r} for {role} in {row!r}: use ✓ or nothing"
            if cell == "✓":
                documented[role].add(permission)
    assert len(seen) == len(set(seen)), "a permission has more than one row"
    assert set(seen) == set(Permission), "every Permission needs a row"
    assert documented == {role: set(ROLE_PERMISSIONS[role]) for role in roles}


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_every_setting_is_documented(field: str) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert f"PLANTWIRE_{field.upper()}" in text
    assert f"`{field}`" in text


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _relative_links(text: str) -> list[str]:
    prose = _CODE_SPAN.sub("", _FENCE.sub("", text))
    targets = []
    for target in _LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue  # absolute URL, mailto:, or an anchor in the same file
        targets.append(target.split("#", 1)[0])
    return targets


def test_docs_exist() -> None:
    names = {path.name for path in DOCS.glob("*.md")}
    for name in ("architecture", "configuration", "security", "api", "development", "benchmarks"):
        assert f"{name}.md" in names


@pytest.mark.parametrize("document", _markdown_files(), ids=lambda path: path.name)
def test_relative_links_point_to_existing_files(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    missing = [
        target
        for target in _relative_links(text)
        if not (document.parent / target).resolve().exists()
    ]
    assert not missing, f"{document.name} links to missing files: {missing}"


def test_link_finder_sees_links_and_skips_code() -> None:
    text = (
        "See [a](docs/a.md#x), [web](https://example.org), [here](#top), ![img](i.png).\n"
        "`[not](a-link.md)`\n```\n[nor](this.md)\n```\n"
    )
    assert _relative_links(text) == ["docs/a.md", "i.png"]
