"""The GX file context of a data directory, synchronised from the code definitions.

Layout under ``<data_dir>/quality/``: ``gx/`` (the GX project: suites, validation definitions,
checkpoints written from code; validation results under ``gx/uncommitted/validations``),
``data_docs/`` (the static Data Docs site), ``state.json`` and ``runs.jsonl`` (see gate.py).
Opening is done once per process and data directory. Writing the definitions through GX takes
about 1.5 s (every pipeline run and ``loyalty validate`` paid it), so ``gx/definitions.sha256``
records what was written: the code's definitions and the files they became. When both still
match, the checkpoints are only read (0.06 s); a change on either side (a new release, a hand edit
of a suite file) writes them again from code. A new data directory starts from a copy of a project
this process already wrote for the same definitions, if any.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loyalty_core.files import replace_text
from loyalty_core.landing_zone import docs_dir, quality_dir
from loyalty_core.settings import Settings

# GX reads these at import: no usage statistics, no network.
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

log = logging.getLogger("loyalty.quality")

SITE_NAME = "loyalty_quality"
#: In ``gx/``: the definitions' digest and the digest of the files they were written to.
DIGEST_FILE = "definitions.sha256"
#: What GX writes from the definitions (uncommitted/ holds results, not definitions).
_DEFINITION_DIRS = ("expectations", "validation_definitions", "checkpoints")
_cache: dict[Path, "QualityContext"] = {}
#: definitions digest -> a copy of a project this process wrote them to (new data directories)
_templates: dict[str, Path] = {}
_lock = threading.Lock()


@dataclass
class QualityContext:
    context: Any  # great_expectations FileDataContext
    checkpoints: dict[str, Any]  # checkpoint name -> gx.Checkpoint
    docs_index: Path


def _quiet_gx() -> None:
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _configure(context: Any, docs: Path) -> None:
    # Great Expectations takes seconds to import: only when the gate runs
    from great_expectations.data_context.types.base import ProgressBarsConfig

    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(docs)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    }
    variables = context.variables
    variables.data_docs_sites = {SITE_NAME: site}
    variables.analytics_enabled = False
    variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # Data Docs put the context id into the URL of the GX logo (fetched from GX's servers when a
    # page is opened); without an id, opening the docs identifies nothing.
    variables.data_context_id = None
    variables.save()


def _sync_definitions(context: Any) -> dict[str, Any]:
    """Create or update the datasource, assets, suites, validation definitions and checkpoints."""
    # Great Expectations takes seconds to import: only when the gate runs
    import great_expectations as gx

    # the gate loads Great Expectations: not at import
    from expectations import checkpoints as specs

    # pandas and Great Expectations: only when validating
    from expectations.suites import all_suites

    suites = all_suites()
    try:
        datasource = context.data_sources.get(specs.DATASOURCE)
    except (KeyError, ValueError, LookupError):
        datasource = context.data_sources.add_pandas(specs.DATASOURCE)
    existing_assets = {asset.name for asset in datasource.assets}
    checkpoints: dict[str, Any] = {}
    for spec in specs.ALL:
        if spec.asset in existing_assets:
            asset = datasource.get_asset(spec.asset)
        else:
            asset = datasource.add_dataframe_asset(spec.asset)
        batch_definition = next((b for b in asset.batch_definitions if b.name == "table"), None) \
            or asset.add_batch_definition_whole_dataframe("table")
        suite = context.suites.add_or_update(suites[spec.suite])
        validation = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=spec.name, data=batch_definition, suite=suite))
        checkpoints[spec.name] = context.checkpoints.add_or_update(gx.Checkpoint(
            name=spec.name, validation_definitions=[validation], actions=[],
            result_format=spec.result_format))
    return checkpoints


def _build_docs_offline(context: Any, docs: Path) -> None:
    """Every Data Docs build of this context ends with the pages made readable offline
    (expectations/offline_docs.py): GX's own pages load their scripts and styles from CDNs, and
    its index of validations is empty without them."""
    # pandas and Great Expectations: only when validating
    from expectations.offline_docs import make_offline

    build = context.build_data_docs

    def build_data_docs(*args: Any, **kwargs: Any) -> Any:
        built = build(*args, **kwargs)
        identifiers = kwargs.get("resource_identifiers")
        runs = {getattr(getattr(i, "run_id", None), "run_name", None) for i in identifiers or ()}
        if not identifiers or None in runs:
            make_offline(docs)  # a full build: every page
        else:
            for run_name in sorted(runs):
                make_offline(docs, run_name)
        return built

    context.build_data_docs = build_data_docs


def _definitions_digest() -> str:
    """What the code defines: every suite, checkpoint and the GX version that writes them."""
    # Great Expectations takes seconds to import: only when the gate runs
    import great_expectations as gx

    # the gate loads Great Expectations: not at import
    from expectations import checkpoints as specs

    # pandas and Great Expectations: only when validating
    from expectations.suites import all_suites

    # this module's code too: a change in what it writes (an action, the asset's kind) must reach
    # every existing project, not only a change in the suites
    try:
        writer = inspect.getsource(sys.modules[__name__])
    except (OSError, TypeError):  # installed without its source: the suites and GX version still count
        writer = ""
    payload = {"gx": gx.__version__, "datasource": specs.DATASOURCE, "writer": writer,
               "suites": {name: suite.to_json_dict() for name, suite in sorted(all_suites().items())},
               "checkpoints": [[spec.name, spec.suite, spec.result_format] for spec in specs.ALL]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _files_digest(project: Path) -> str:
    digest = hashlib.sha256()
    for folder in _DEFINITION_DIRS:
        for path in sorted((project / folder).glob("*.json")):
            digest.update(f"{folder}/{path.name}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _written(project: Path) -> tuple[str, str] | None:
    try:
        code, files = (project / DIGEST_FILE).read_text().split()
    except (OSError, ValueError):
        return None
    return code, files


def _start_from_template(project: Path, digest: str) -> None:
    template = _templates.get(digest)
    if template is None or (project / "great_expectations.yml").exists():
        return
    try:
        shutil.copytree(template, project, dirs_exist_ok=True)
    except OSError as exc:  # the copy is a shortcut: GX writes the definitions itself instead
        log.debug("could not copy the GX project template %s: %s", template, exc)


def _keep_template(project: Path, digest: str) -> None:
    if digest in _templates:
        return
    template = Path(tempfile.mkdtemp(prefix="loyalty-gx-template-")) / "gx"
    try:
        shutil.copytree(project, template, ignore=shutil.ignore_patterns("uncommitted", ".ge_store_backend_id"))
    except OSError as exc:
        log.debug("could not keep a GX project template: %s", exc)
        return
    atexit.register(shutil.rmtree, template.parent, True)
    _templates[digest] = template


def open_context(settings: Settings) -> QualityContext:
    """The synchronised GX context of ``settings.data_dir`` (cached per process)."""
    root = quality_dir(settings).resolve()
    with _lock:
        cached = _cache.get(root)
        if cached is not None and (root / "gx" / "great_expectations.yml").exists():
            return cached
        _quiet_gx()
        # Great Expectations takes seconds to import: only when the gate runs
        import great_expectations as gx

        # the gate loads Great Expectations: not at import
        from expectations import checkpoints as specs

        root.mkdir(parents=True, exist_ok=True)
        project = root / "gx"
        digest = _definitions_digest()
        _start_from_template(project, digest)
        context = gx.get_context(mode="file", project_root_dir=str(root))
        docs = docs_dir(settings).resolve()
        _configure(context, docs)
        checkpoints = None
        if _written(project) == (digest, _files_digest(project)):
            try:
                checkpoints = {spec.name: context.checkpoints.get(spec.name) for spec in specs.ALL}
            except Exception as exc:  # noqa: BLE001 - unreadable: written again below
                log.info("GX definitions in %s could not be read (%s); writing them again", project, exc)
        if checkpoints is None:
            checkpoints = _sync_definitions(context)
            # whole or not at all: another process may read it
            replace_text(project / DIGEST_FILE, f"{digest} {_files_digest(project)}\n")
            _keep_template(project, digest)
        _build_docs_offline(context, docs)
        opened = QualityContext(context, checkpoints, docs / "index.html")
        _cache[root] = opened
        return opened
