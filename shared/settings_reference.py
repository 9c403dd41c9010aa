"""docs/configuration.md, generated from the settings model so that it cannot drift from the code.

python -m shared.settings_reference > docs/configuration.md
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo

from shared.settings import Settings

HEADER = """# Configuration reference

Generated from `shared/settings.py` by `python -m shared.settings_reference > docs/configuration.md`
(a test fails when this page and the settings model differ). Every setting is an environment variable with
the prefix `CAREPATH_`; the embedded default needs none of them. Production (`CAREPATH_ENV=production`)
needs at least `CAREPATH_SECRET_KEY`, `CAREPATH_DATABASE_URL` and `CAREPATH_BROKER_URL`.

| variable | type | default | meaning |
|---|---|---|---|
"""


CHECKOUT = Path(__file__).resolve().parents[1]


def _portable(path: Path) -> str:
    """An absolute default under or beside the checkout, written relative to it (the page must not depend on
    where the checkout lives)."""
    if not path.is_absolute():
        return str(path)
    for base, prefix in ((CHECKOUT, ""), (CHECKOUT.parent, "../")):
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            continue
    return str(path)


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value in ("", None):
        return "—"
    if isinstance(value, Path):
        value = _portable(value)
    return f"`{value}`"


def _type(field: FieldInfo) -> str:
    annotation = field.annotation
    return getattr(annotation, "__name__", str(annotation)).replace("|", "\\|")


def render() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `CAREPATH_{name.upper()}` | {_type(field)} | {_default(field)} | {meaning} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
