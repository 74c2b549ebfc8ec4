"""The files of the dbt project that make what dbt parses and builds: one listing for what keys a
parse (``loyalty_monitor.pipeline.dbt_reuse``) and what says the stored days must be scored again
(``loyalty_monitor.warehouse.build_fingerprint``). Imports nothing of the project."""

from __future__ import annotations

from pathlib import Path

#: What dbt reads from a project (models and macros, their YAML, Python models, seeds, docs blocks).
PROJECT_SUFFIXES = frozenset({".sql", ".py", ".yml", ".yaml", ".csv", ".md"})
#: What dbt writes or installs into the project, not part of it.
NOT_PROJECT_DIRS = frozenset({"target", "dbt_packages", "logs"})


def project_files(project: Path) -> list[Path]:
    """The project's files dbt reads, sorted (symlinks followed: cosmos's copies link to the
    project), without target/, logs/ and installed packages."""
    return sorted(p for p in project.rglob("*") if p.suffix in PROJECT_SUFFIXES and p.is_file()
                  and p.relative_to(project).parts[0] not in NOT_PROJECT_DIRS)
