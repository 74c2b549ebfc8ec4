"""One parse of the dbt project for all the dbt tasks of a run that share a process.

astronomer-cosmos runs each model task as its own dbt invocation in a temporary copy of the
project, and dbt parses the project again (partially) for every one of them. When the tasks share
a process (``loyalty run``, the demo and the tests: ``dag.test()`` runs every task in-process), that
parse was about 0.27 s of each task's 0.7 s: 13 s of a 50-task run. dbt's programmatic API takes a
parsed manifest (``dbtRunner(manifest=...)``, "reusing objects" in dbt's docs) and then skips
parsing. ``install()`` wraps cosmos's runner so that a task reuses the manifest parsed for the same
inputs: the project's files (names, sizes, modification times), the command's flags other than
the node selection (the vars, profile, target) and the variables dbt reads from the environment
(``LOYALTY_*``, ``DBT_*``), but not the run's date (``LOYALTY_AS_OF_DATE``: dbt reads it only when
it executes, it never enters the parsed manifest), so that a process running several dates parses
once. Any other input is parsed again; when the parse fails, the task runs as cosmos runs it. With
one process per task (a production executor) nothing is reused and nothing changes.

The parse reads the project where it lives (not the task's temporary copy, which is deleted after
the task) into ``LOYALTY_DBT_PARSE_DIR`` when the task's environment names one (the DAG names the
directory its manifest was parsed in: ``airflow_setup.dbt_target_dir``), without writing JSON there,
so that dbt's partial parsing finds the last parse of an earlier run, or of the DAG's manifest:
about 0.4 s instead of 5 s of a full parse. Without it, into a temporary directory removed at exit.

Two of cosmos's per-task steps only serve what this module replaces or what nothing here reads,
and ``install()`` leaves them out (a daily run of a 40-customer history: 42 -> 38 s): copying
cosmos's cached ``partial_parse.msgpack`` into the task's copy of the project (unpacked and patched
for the copy's path; dbt runs on the manifest given here and never reads it), and extracting
OpenLineage events from the task's artifacts when Airflow's OpenLineage provider, the only reader
of those events, is not installed and the task emits no Airflow assets (``emit_datasets``, off in
the DAG; the extraction also copied the task's environment into the process's ``os.environ``, where
it outlived the task). A task whose parse here fails then parses in full, not partially.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from loyalty_core.dbt_files import project_files

log = logging.getLogger(__name__)

#: Flags (with their value) that choose nodes or how to run them, not what the project parses to.
_RUN_ONLY_FLAGS = {"--select", "-s", "--models", "-m", "--exclude", "--selector", "--indirect-selection"}
_RUN_ONLY_SWITCHES = {"--full-refresh"}
_COMMANDS = {"build", "run", "test", "seed", "snapshot", "compile"}
#: Manifests kept (a process's runs share one; another environment, e.g. another data directory, parses its own).
_KEEP = 2
#: The environment variable naming where to parse (``airflow_setup.dbt_run_environment`` sets it).
PARSE_DIR_ENV = "LOYALTY_DBT_PARSE_DIR"
#: Environment a parse does not depend on: the run's date (``warehouse.AS_OF_ENV``, spelled out
#: because this module loads with the DAG file, before the warehouse module) and where to parse.
_NOT_PARSED_ENV = {"LOYALTY_AS_OF_DATE", PARSE_DIR_ENV}

_lock = threading.Lock()
_parsed: OrderedDict[str, Any] = OrderedDict()
_target_dir: Path | None = None
_installed = False


def files_digest(project: Path) -> str:
    """What dbt parses from a project directory: its files' names, sizes and modification times
    (``loyalty_core.dbt_files.project_files``)."""
    digest = hashlib.sha256()
    for path in project_files(project):
        stat = path.stat()
        digest.update(f"{path.relative_to(project)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def parse_inputs(args: list[str], env: dict[str, str]) -> tuple[Path, list[str], str] | None:
    """The project directory, the flags a parse needs and the key of what it parses to, from a
    cosmos command (``args`` without the executable); None when the command is not one to share."""
    flags: list[str] = []
    project: Path | None = None
    command = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in _RUN_ONLY_FLAGS:
            i += 2
            continue
        if arg == "--project-dir" and i + 1 < len(args):
            project = Path(args[i + 1])
            i += 2
            continue
        if arg in _RUN_ONLY_SWITCHES:
            pass
        elif command is None and arg in _COMMANDS:
            command = arg
        else:
            flags.append(arg)
        i += 1
    if command is None or project is None or not (project / "dbt_project.yml").exists():
        return None
    original = (project / "dbt_project.yml").resolve().parent  # cosmos's copy links to the project
    seen = {**os.environ, **env}
    environment = {k: v for k, v in seen.items()
                   if k.startswith(("LOYALTY_", "DBT_")) and k not in _NOT_PARSED_ENV}
    key = hashlib.sha256(json.dumps({"project": str(original), "files": files_digest(original), "flags": flags,
                                     "env": environment}, sort_keys=True).encode()).hexdigest()
    return original, flags, key


def _parse(original: Path, flags: list[str], env: dict[str, str]) -> Any | None:
    """The parsed manifest of the project at ``original`` (None when dbt could not parse it)."""
    from dbt.cli.main import dbtRunner  # dbt takes seconds to import: only when a task runs

    from loyalty_monitor import warehouse  # as the pipeline's steps do: not when the DAG file loads

    global _target_dir
    if _target_dir is None:
        _target_dir = Path(tempfile.mkdtemp(prefix="loyalty-dbt-parse-"))
        atexit.register(shutil.rmtree, _target_dir, True)
    parse_dir = {**os.environ, **env}.get(PARSE_DIR_ENV) or str(_target_dir)
    write_json = [] if "--no-write-json" in flags else ["--no-write-json"]  # the DAG's manifest.json stays
    with warehouse.environment(env):
        result = dbtRunner().invoke(["parse", *flags, *write_json, "--project-dir", str(original),
                                     "--target-path", parse_dir, "--log-path", str(_target_dir / "logs"),
                                     "--quiet"])
    if not result.success:
        log.info("dbt parse for reuse failed (%s); the task parses for itself", result.exception)
        return None
    return result.result


def manifest_for(args: list[str], env: dict[str, str]) -> Any | None:
    """The parsed manifest to run ``args`` with (in the environment ``env``), parsed once per key;
    None: let dbt parse."""
    inputs = parse_inputs(args, env)
    if inputs is None:
        return None
    original, flags, key = inputs
    with _lock:
        if key in _parsed:
            _parsed.move_to_end(key)
            return _parsed[key]
        # kept also when the parse failed (None): each task would otherwise try it again
        manifest = _parsed[key] = _parse(original, flags, env)
        while len(_parsed) > _KEEP:
            _parsed.popitem(last=False)
        return manifest


def lineage_is_emitted() -> bool:
    """Whether anything reads the OpenLineage events cosmos extracts after each dbt task: Airflow's
    OpenLineage provider (cosmos hands them to it; ``emit_datasets`` is off in the DAG)."""
    try:
        return importlib.util.find_spec("airflow.providers.openlineage") is not None
    except ModuleNotFoundError:  # no airflow.providers namespace at all
        return False


def _skip_unused_cosmos_steps() -> None:
    """Leave out cosmos's per-task steps that serve nothing here (module docstring): the copy of
    its partial-parse cache, and the OpenLineage extraction when no provider reads the events.
    The methods are only replaced where cosmos still has them."""
    from cosmos.operators.local import AbstractDbtLocalBase  # cosmos: loaded with the DAG anyway

    def no_partial_parse_copy(self: Any, tmp_dir_path: Path) -> None:
        return None

    if hasattr(AbstractDbtLocalBase, "_handle_partial_parse"):
        AbstractDbtLocalBase._handle_partial_parse = no_partial_parse_copy
    extract = getattr(AbstractDbtLocalBase, "calculate_openlineage_events_completes", None)
    if extract is not None and not lineage_is_emitted():
        def lineage_only_for_assets(self: Any, *args: Any, **kwargs: Any) -> bool:
            # an operator that emits Airflow assets builds them from these events: it keeps them
            return extract(self, *args, **kwargs) if getattr(self, "emit_datasets", False) else False

        AbstractDbtLocalBase.calculate_openlineage_events_completes = lineage_only_for_assets


def name_behavior_flags_cheaply() -> None:
    """Give dbt's behaviour flags the name of the package that declared them without walking the
    whole call stack. dbt does it with ``inspect.stack()`` for each flag that names no ``source``,
    every time an adapter is created (every dbt task): that reads the source lines of every frame
    and searches the loaded modules for each one, 0.2 s a flag and two flags a task under Airflow's
    deep stacks with some 3,500 modules loaded: a sixth of a daily run. The same name comes from the globals of the
    first frame outside dbt_common (the module its code belongs to). Replaced only where dbt still
    has the method; idempotent."""
    try:
        from dbt_common import behavior_flags  # dbt: only when a task runs, never at DAG parse
    except ImportError:
        return
    rendered = getattr(behavior_flags, "BehaviorFlagRendered", None)
    current = rendered.__dict__.get("_default_source") if rendered is not None else None
    if not isinstance(current, staticmethod) or current.__func__.__module__ == __name__:
        return  # dbt changed it, or it is replaced already (every task calls this)

    def default_source() -> str:
        frame = sys._getframe(1)
        while frame is not None:
            name = frame.f_globals.get("__name__")
            if name and name != behavior_flags.__name__:
                return name
            frame = frame.f_back
        return "Unknown"

    rendered._default_source = staticmethod(default_source)


def install() -> None:
    """Wrap cosmos's dbt runner (``cosmos.dbt.runner.run_command``) once per process, and leave
    out the cosmos steps it makes unnecessary."""
    global _installed
    if _installed:
        return
    from cosmos.dbt import runner  # cosmos only where the DAG is loaded (which imports it anyway)

    original_run_command = runner.run_command

    def run_command(command: list[str], env: dict[str, str], cwd: str, callbacks: list | None = None,
                    **kwargs: Any) -> Any:
        from dbt.cli.main import dbtRunner  # dbt takes seconds to import: only when a task runs

        name_behavior_flags_cheaply()
        try:
            manifest = manifest_for(command[1:], env)
        except Exception:  # noqa: BLE001 - reuse is an optimisation: never the reason a task fails
            log.exception("could not prepare a parsed dbt manifest; the task parses for itself")
            manifest = None
        if manifest is None:
            return original_run_command(command, env, cwd, callbacks=callbacks, **kwargs)
        with runner.change_working_directory(cwd), runner.environ(env):
            try:
                return dbtRunner(manifest=manifest, callbacks=callbacks or []).invoke(command[1:])
            finally:
                runner._cleanup_dbt_adapters()  # as cosmos does: release the adapters' semaphores

    runner.run_command = run_command
    _skip_unused_cosmos_steps()
    _installed = True
