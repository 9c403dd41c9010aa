"""The server-rendered SVG charts: one marker per pain assessment, the baseline and 30 % lines at the right
values, a text alternative, deterministic output, ids unique per chart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from carepath.workspace import PathwayReadings
from services.notifications.web import charts

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)
POINTS = [
    charts.PainPoint(T0 + timedelta(days=30), 8, 7),
    charts.PainPoint(T0 + timedelta(days=60), 7, None),
    charts.PainPoint(T0 + timedelta(days=90), 4, 3),
    charts.PainPoint(T0 + timedelta(days=120), 6, 5),
]
MME = [(T0 + timedelta(days=40), 60.0), (T0 + timedelta(days=80), 0.0)]
MARKERS = [charts.Marker(T0, "surgery", "Surgery"), charts.Marker(T0 + timedelta(days=50), "procedure", "ESI")]


def _group(svg: str, gid: str) -> str:
    start = svg.index(f'<g id="{gid}">')
    depth, index = 0, start
    for match in re.finditer(r"<g\b|</g>", svg[start:]):
        depth += 1 if match.group() == "<g" else -1
        if depth == 0:
            index = start + match.end()
            break
    return svg[start:index]


def _horizontal_y(group: str) -> float:
    (y0, y1) = re.search(r"M [\d.]+ ([\d.]+)\s*L [\d.]+ ([\d.]+)", group).groups()  # type: ignore[union-attr]
    assert y0 == y1
    return float(y0)


def test_pain_points_and_baseline_lines_are_drawn_at_their_values() -> None:
    chart = charts.timeline("timeline", POINTS, 8, MME, MARKERS, T0 + timedelta(days=130))
    svg = chart.svg
    uses = re.findall(r'<use [^>]*x="([\d.]+)" y="([\d.]+)"', _group(svg, "timeline-pain-nrs"))
    assert len(uses) == len(POINTS)  # one marker per assessment
    ys = {p.pain_nrs: float(y) for p, (_, y) in zip(POINTS, uses, strict=True)}

    def y_of(value: float) -> float:  # the axis is linear: from the markers at 8 and 4
        return ys[8] + (value - 8) * (ys[4] - ys[8]) / (4 - 8)

    assert abs(ys[7] - y_of(7)) < 0.01 and abs(ys[6] - y_of(6)) < 0.01
    assert abs(_horizontal_y(_group(svg, "timeline-baseline")) - y_of(8)) < 0.01
    assert abs(_horizontal_y(_group(svg, "timeline-improvement")) - y_of(8 * 0.7)) < 0.01
    assert len(re.findall(r"<use ", _group(svg, "timeline-pain-peg"))) == 3  # PEG where recorded
    assert 'id="timeline-mme"' in svg and svg.count('id="timeline-event-') == 2


def test_text_alternative_determinism_and_unique_ids() -> None:
    chart = charts.timeline("timeline", POINTS, 8, MME, MARKERS, T0 + timedelta(days=130))
    assert chart.svg.startswith('<svg role="img" aria-labelledby="timeline-title timeline-desc"')
    assert '<title id="timeline-title">' in chart.svg and "baseline 8/10" in chart.description
    assert "4 pain assessments" in chart.description and "<?xml" not in chart.svg
    again = charts.timeline("timeline", POINTS, 8, MME, MARKERS, T0 + timedelta(days=130))
    assert again.svg == chart.svg
    other = charts.bars("stages", "Patients per stage", ["First line", "Refractory"], [("Patients", [3, 1])])
    ids = re.findall(r'\bid="([^"]+)"', chart.svg + other.svg)
    assert len(ids) == len(set(ids))
    assert all(i.startswith(("timeline-", "stages-")) for i in ids)
    assert other.description == "First line: Patients 3; Refractory: Patients 1"


def test_without_baseline_no_baseline_line() -> None:
    chart = charts.timeline("timeline", POINTS[:1], None, [], [], T0 + timedelta(days=40))
    assert 'id="timeline-baseline"' not in chart.svg and 'id="timeline-improvement"' not in chart.svg


def test_mme_steps_follow_the_courses() -> None:
    meds = [
        ("a", T0, {"drug_class": "opioid_ir", "action": "started", "mme_per_day": 30}),
        ("b", T0 + timedelta(days=5), {"drug_class": "opioid_er", "action": "started", "mme_per_day": 40}),
        ("c", T0 + timedelta(days=9), {"drug_class": "opioid_er", "action": "stopped"}),
        ("d", T0 + timedelta(days=12), {"drug_class": "opioid_ir", "action": "stopped"}),
        ("e", T0 + timedelta(days=20), {"drug_class": "opioid_ir", "action": "started"}),
    ]
    assert PathwayReadings().mme_steps(meds) == [
        (T0, 30.0),
        (T0 + timedelta(days=5), 70.0),
        (T0 + timedelta(days=9), 30.0),
        (T0 + timedelta(days=12), 0.0),
        (T0 + timedelta(days=20), None),
    ]
