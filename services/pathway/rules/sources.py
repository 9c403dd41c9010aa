"""The source catalogue (docs/sources.md): the one place where citation codes get their titles and addresses.

Recommendations and deadlines cite codes ("G3; CDC22"); `resolve` turns a citation into the full sources a
coordinator can read. Texts that name a source use `name_of`, so a code never appears without its source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_ARTICLE = 'Guideline article "Management of Persistent Chronic Lower Back Pain After Laminectomy and Foraminotomies"'


@dataclass(frozen=True)
class Source:
    code: str
    title: str
    url: str | None
    short: str  # how a recommendation text names it

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "url": self.url}


def _g(number: int, claims: str, short: str) -> Source:
    return Source(f"G{number}", f"{_ARTICLE}, reference {number}: {claims}", None, short)


# fmt: off
SOURCES: Mapping[str, Source] = {s.code: s for s in (
    _g(1, "initial evaluation (MRI/CT, neurological deficits), active PT and activity over bed rest, repeat "
          "surgery only with a clear target, prognosis and imaging pitfalls",
       "the post-laminectomy guideline article, reference 1"),
    _g(2, "facet joint pain in about 32 % of post-surgical chronic low back pain",
       "the post-laminectomy guideline article, reference 2 on facet pain"),
    _g(3, "the pain-management practice guideline behind PT, medication (non-opioids first, opioid "
          "monitoring, tolerance within 4 weeks, no benefit without relief within 1 month), psychological "
          "treatment, epidural steroid injections, medial branch blocks and RF denervation, SCS and TENS",
       "the pain-management practice guideline that the guideline article cites as reference 3"),
    _g(4, "psychological and social prognostic factors",
       "the guideline article's reference 4 on prognostic factors"),
    _g(5, "percutaneous transforaminal endoscopic decompression for nerve entrapment in scar tissue",
       "the guideline article's reference 5 on endoscopic decompression"),
    _g(6, "multidisciplinary pain rehabilitation, also at higher grades of chronicity",
       "the guideline article's reference 6 on multidisciplinary rehabilitation"),
    Source("CDC22",
           "Dowell D, Ragan KR, Jones CM, Baldwin GT, Chou R. CDC Clinical Practice Guideline for Prescribing "
           "Opioids for Pain — United States, 2022. MMWR Recomm Rep 2022;71(No. RR-3):1–95",
           "https://www.cdc.gov/mmwr/volumes/71/rr/rr7103a1.htm", "the CDC Clinical Practice Guideline for Prescribing Opioids for Pain, 2022"),
    Source("IMMPACT",
           "Dworkin RH, Turk DC, Wyrwich KW, et al. Interpreting the clinical importance of treatment outcomes "
           "in chronic pain clinical trials: IMMPACT recommendations. J Pain 2008;9(2):105–121",
           "https://doi.org/10.1016/j.jpain.2007.09.005", "the IMMPACT recommendations"),
    Source("NICE NG59",
           "NICE guideline NG59: Low back pain and sciatica in over 16s: assessment and management (2016, "
           "updated 2020)",
           "https://www.nice.org.uk/guidance/ng59", "NICE guideline NG59, Low back pain and sciatica in over 16s"),
    Source("NICE TA159",
           "NICE technology appraisal TA159: Spinal cord stimulation for chronic pain of neuropathic or "
           "ischaemic origin (2008)",
           "https://www.nice.org.uk/guidance/ta159", "NICE technology appraisal TA159 on spinal cord stimulation"),
    Source("CMS LCD",
           'Medicare Local Coverage Determination "Facet Joint Interventions for Pain Management" (L38801 and '
           'its sister LCDs); for SCS, the LCD "Spinal Cord Stimulators for Chronic Pain"',
           "https://www.cms.gov/medicare-coverage-database/view/lcd.aspx?lcdid=38801",
           "the Medicare local coverage determination on facet joint interventions"),
    Source("ASRA 2020",
           "Cohen SP, Bhaskar A, Bhatia A, et al. Consensus practice guidelines on interventions for lumbar facet "
           "joint pain from a multispecialty, international working group. Reg Anesth Pain Med 2020;45:424–467",
           "https://doi.org/10.1136/rapm-2019-101243", "the Cohen et al. 2020 consensus guidelines on lumbar facet joint interventions"),
)}
# fmt: on


def codes(citation: str) -> list[str]:
    """The codes of a citation string ("G3; CDC22" -> ["G3", "CDC22"]); ValueError for an unknown code."""
    result = [code.strip() for code in citation.split(";") if code.strip()]
    unknown = [code for code in result if code not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source code(s) {unknown} in citation {citation!r}")
    return result


def resolve(citation: str) -> list[dict[str, Any]]:
    """Every source of a citation as {code, title, url} (url None where the source has no address)."""
    return [SOURCES[code].to_dict() for code in codes(citation)]


def name_of(code: str) -> str:
    """How a recommendation text names a source (never the bare code)."""
    return SOURCES[code].short
