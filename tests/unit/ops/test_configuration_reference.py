"""docs/configuration.md is the settings model's own rendering: a new or changed setting must be documented."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from shared.settings_reference import render

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), "regenerate: python -m shared.settings_reference > docs/configuration.md"


def test_every_setting_has_a_row() -> None:
    text = DOC.read_text()
    for name in Settings.model_fields:
        assert f"`CAREPATH_{name.upper()}`" in text
