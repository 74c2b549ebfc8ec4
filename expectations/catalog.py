"""Print every expectation of every suite as a Markdown table (suite, expectation, column,
severity, why): ``python -m expectations.catalog``. docs/quality.md embeds its output, so the
documentation is generated from the one place the checks are defined."""

from __future__ import annotations

from typing import Any

from expectations.suites import suite_modules


def _target(kwargs: dict[str, Any]) -> str:
    if kwargs.get("column"):
        return kwargs["column"]
    if kwargs.get("column_list"):
        return ", ".join(kwargs["column_list"])
    if kwargs.get("column_A"):
        return f"{kwargs['column_A']} {'>=' if kwargs.get('or_equal') else '>'} {kwargs['column_B']}"
    return "(table)"


def _condition(expectation: Any) -> str:
    condition = getattr(expectation, "row_condition", None)
    return f" where {condition!r}" if condition else ""


def rows() -> list[tuple[str, str, str, str, str]]:
    out = []
    for module in suite_modules():
        for expectation in module.build().expectations:
            config = expectation.configuration
            severity = getattr(expectation.severity, "value", str(expectation.severity))
            out.append((module.NAME, config.type, _target(config.kwargs) + _condition(expectation),
                        severity, (expectation.meta or {}).get("why", "")))
    return out


def on_failure(suite: str, severity: str) -> str:
    """What a failure does: report it, set the failing rows aside, or stop the run."""
    # pandas and Great Expectations: only when validating
    from expectations.checkpoints import ROW_LEVEL_SUITES

    if severity != "critical":
        return "report"
    return "quarantine rows" if suite in ROW_LEVEL_SUITES else "stop the run"


def markdown() -> str:
    lines = ["| suite | expectation | column | severity | on failure | why |",
             "|---|---|---|---|---|---|"]
    lines += [f"| `{s}` | `{e}` | `{c}` | {sev} | {on_failure(s, sev)} | {why} |"
              for s, e, c, sev, why in rows()]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown())
