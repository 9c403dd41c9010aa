"""Every flag code the engine's catalogue can emit has a plain-language text, and the table holds no other."""

from __future__ import annotations

from services.notifications.web import wording
from services.pathway.rules.catalog import FLAG_RULES, STAGE_ORDER, URGENT


def test_every_flag_code_has_plain_words_and_no_stale_ones() -> None:
    assert set(wording.FLAG_WORDS) == set(FLAG_RULES)
    for code, text in wording.FLAG_WORDS.items():
        assert text.strip() and text.rstrip().endswith((".", ")")), code
        assert code not in text  # written for people, not a code


def test_every_stage_has_a_label() -> None:
    assert set(wording.STAGE_LABELS) == {*STAGE_ORDER, URGENT} == set(wording.STAGE_ORDER)
    assert wording.stage_label(None) == "Not evaluated yet"
