"""OperationOutcome issues: one per problem, naming the entry and element (FHIRPath `expression`).

Messages name elements and codes, never the clinical values or identifiers of the patient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir.resources.R4B.operationoutcome import OperationOutcome


@dataclass(frozen=True)
class Issue:
    severity: str  # fatal | error | warning | information
    code: str  # invalid | structure | required | value | code-invalid | not-supported | duplicate | informational | processing
    diagnostics: str
    expression: str | None = None

    def as_dict(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


def error(expression: str | None, diagnostics: str, code: str = "invalid") -> Issue:
    return Issue("error", code, diagnostics, expression)


def warning(expression: str | None, diagnostics: str, code: str = "not-supported") -> Issue:
    return Issue("warning", code, diagnostics, expression)


def information(expression: str | None, diagnostics: str, code: str = "informational") -> Issue:
    return Issue("information", code, diagnostics, expression)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """An OperationOutcome built and checked with fhir.resources, as JSON-ready dict."""
    if not issues:
        issues = [information(None, "all ok")]
    model = OperationOutcome(issue=[issue.as_dict() for issue in issues])
    result: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return result


def fhir_path(prefix: str, loc: tuple[Any, ...]) -> str:
    """('dosageInstruction', 0, 'doseAndRate') under 'Bundle.entry[2].resource' → '….dosageInstruction[0].doseAndRate'."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith("function-after") or str(part).startswith("function-"):
            continue  # a validator's name in pydantic's location, not an element
        else:
            path += f".{part}"
    return path
