"""Airflow on this machine: in-process DAG runs (``loyalty run``) and the local stack (``loyalty up``/``down``).

Airflow reads its configuration when first imported, so :func:`prepare_airflow` must run before
anything imports ``airflow``: it points AIRFLOW_HOME at ``<data_dir>/airflow`` (unless set), the DAG
folder at the repository's ``dags/``, and defines the Kafka connection the asset watcher uses. The
metadata database (SQLite) is migrated once per AIRFLOW_HOME and Airflow version; a new home
starts from a copy of the first empty database this installation migrated.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any, Callable

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from loyalty_core import locks
from loyalty_core.files import replace_text, replacing
from loyalty_core.settings import ENV_PREFIX, NESTED_DELIMITER, PROJECT_ROOT, Secret, Settings, load_settings, reveal
from loyalty_monitor import broker, pipeline, warehouse
from loyalty_monitor.broker import pid_alive

log = logging.getLogger(__name__)

MIGRATED_STAMP = ".loyalty-db-migrated"


def _venv_bin() -> Path:
    return Path(sys.executable).parent


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment Airflow processes of this project need (user-set values win)."""
    env = dict(os.environ)
    for key, value in pipeline.airflow_environment(settings).items():
        if key == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" and "AIRFLOW_HOME" in os.environ:
            continue  # a user-chosen AIRFLOW_HOME brings its own database
        env.setdefault(key, value)
    env["PATH"] = f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}"
    return env


def prepare_airflow(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """Export the Airflow environment into this process and migrate the metadata DB once."""
    if "airflow" in sys.modules and "AIRFLOW_HOME" not in os.environ:
        raise RuntimeError("airflow was imported before prepare_airflow(): its configuration is already fixed")
    env = airflow_env(settings)
    for key, value in env.items():
        os.environ[key] = value
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    ensure_migrated(home, env, progress)
    prepare_dbt_manifest(settings, progress)
    return home


def prepare_dbt_manifest(settings: Settings, progress: Callable[[str], None] = print) -> Path:
    """Parse the dbt project for the DAG's one-task-per-model rendering now, when it changed, so
    that the DAG file only reads the manifest: a parse inside the DAG import could outlast
    Airflow's import timeout on a busy machine, and the DAG would then not be found."""
    started = time.monotonic()
    manifest = pipeline.dbt_manifest(settings)
    if time.monotonic() - started > 1:
        progress(f"dbt project parsed for the DAG in {time.monotonic() - started:.0f} s")
    return manifest


def _airflow_version() -> str:

    return version("apache-airflow-core")


def _sqlite_file(env: dict[str, str]) -> Path | None:
    """The file of a SQLite metadata database (None for a server database)."""
    url = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not url.startswith("sqlite:///") or "?" in url:  # options (?timeout=...): the user's own set-up
        return None
    return Path(url[len("sqlite:///"):])


def _airflow_distributions() -> str:
    """Airflow and its providers as installed (providers bring tables of their own): the template's key."""
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions()
                       if (d.metadata["Name"] or "").lower().startswith("apache-airflow"))
    return hashlib.sha256("\n".join(installed).encode()).hexdigest()[:16]


def migrated_template(version_: str) -> Path:
    """Where a freshly migrated, empty SQLite metadata database of this Airflow version (and these
    providers) is kept, beside the installed packages (``sys.prefix``: it goes with the virtualenv)."""
    return Path(sys.prefix) / "var" / "loyalty-monitor" / f"airflow-{version_}-{_airflow_distributions()}.db"


def _keep_template(database: Path, template: Path) -> None:
    """Best effort: a read-only installation (a container image) just migrates every new home."""
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        # SQLite's backup, not a file copy: Airflow runs the database in WAL mode; both connections
        # close before the copy is renamed into place (a concurrent copy never reads half a file)
        with replacing(template) as partial, contextlib.closing(sqlite3.connect(database)) as source, \
                contextlib.closing(sqlite3.connect(partial)) as copy:
            source.backup(copy)
    except (OSError, sqlite3.Error) as exc:
        log.debug("no migrated-database template kept at %s: %s", template, exc)


def ensure_migrated(home: Path, env: dict[str, str], progress: Callable[[str], None] = print) -> float:
    """Run ``airflow db migrate`` unless this home was migrated for this Airflow version; seconds spent.

    A new SQLite database starts as a copy of the empty one the first migration on this
    installation left (``migrated_template``): every new data directory (each test, each
    bench history) otherwise spent 10-20 s migrating the same empty schema."""
    stamp = home / MIGRATED_STAMP
    wanted = _airflow_version()
    if stamp.exists() and stamp.read_text().strip() == wanted:
        return 0.0
    started = time.monotonic()
    database, template = _sqlite_file(env), migrated_template(wanted)
    if database is not None and not database.exists() and template.is_file():
        database.parent.mkdir(parents=True, exist_ok=True)
        # a copy cut short never stands as the database, which is as private as the one Airflow
        # itself creates under the data directory
        with replacing(database, mode=0o600) as partial:
            shutil.copyfile(template, partial)
        stamp.write_text(wanted)
        return time.monotonic() - started
    progress(f"preparing the Airflow metadata database in {home} (one time)...")
    fresh = database is not None and not database.exists()
    proc = subprocess.run([str(_venv_bin() / "airflow"), "db", "migrate"], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError("airflow db migrate failed: " + " | ".join(tail))
    took = time.monotonic() - started
    if fresh and database.is_file():
        _keep_template(database, template)
    stamp.write_text(wanted)
    progress(f"Airflow metadata database ready in {took:.0f} s")
    return took


def load_dag(dag_id: str = pipeline.DAG_ID) -> Any:
    """The DAG as Airflow parses it from the repository's dags/ folder."""
    # Airflow: only inside a run, never when this module is imported
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    if dag_id not in bag.dags:
        errors = "; ".join(f"{Path(k).name}: {str(v).strip().splitlines()[-1]}" for k, v in bag.import_errors.items())
        raise RuntimeError(f"DAG {dag_id} not found in {PROJECT_ROOT / 'dags'}" + (f": {errors}" if errors else ""))
    return bag.dags[dag_id]


@dataclass
class RunOutcome:
    as_of: dt.date
    state: str
    seconds: float
    failed_tasks: list[str]
    #: task id -> the error it failed with (its last attempt), as Airflow's listener saw it
    errors: dict[str, str] = field(default_factory=dict)
    #: tasks that skipped themselves or were skipped by a branch (the daily DAG's unused path)
    skipped_tasks: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _airflow_output_to(log_file: Path | None, tasks: int = 0, title: str = ""):
    """Send everything Airflow, dbt and GX print (thousands of lines per run) to ``log_file``, and
    show on the console which task runs: a progress bar over the run's ``tasks`` on a terminal, one
    line per task elsewhere. ``None``: leave the output alone."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    with log_file.open("ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    stop = threading.Event()
    bar = _task_bar(console, tasks, title) if tasks and console.isatty() else None

    def follow() -> None:
        with log_file.open("r", errors="replace") as reader:
            reader.seek(0, os.SEEK_END)
            while not stop.is_set():
                line = reader.readline()
                if not line:
                    time.sleep(0.2)
                    continue
                started = re.search(r"\[DAG TEST\] starting task_id=(\S+)", line)
                ended = re.search(r"\[DAG TEST\] (?:end task task_id=(\S+)|Marking success for)", line)
                if started and bar is None:
                    console.write(f"    {started.group(1)}\n")
                elif started:
                    bar[0].update(bar[1], description=started.group(1))
                elif ended and bar is not None:
                    bar[0].advance(bar[1])

    follower = threading.Thread(target=follow, name="loyalty-run-progress", daemon=True)
    follower.start()
    if bar is not None:
        bar[0].start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.3)  # let the follower print the last task
        stop.set()
        follower.join(2)
        if bar is not None:
            bar[0].update(bar[1], completed=tasks, description="done")  # branches skip the rest
            bar[0].stop()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        console.close()


def _task_bar(console: Any, tasks: int, title: str) -> tuple[Progress, TaskID]:
    """A progress bar over a DAG run's tasks, drawn on the saved terminal (stdout goes to the log)."""
    progress = Progress(TextColumn(f"    {title}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("[cyan]{task.description}"), TimeElapsedColumn(),
                        console=Console(file=console, force_terminal=True), transient=True)
    return progress, progress.add_task("starting", total=tasks)


def run_dates(settings: Settings, dates: list[dt.date], dag_id: str = pipeline.DAG_ID,
              progress: Callable[[str], None] = print, skip_tasks: str | None = None,
              log_file: Path | None = None, conf: dict[str, Any] | None = None) -> list[RunOutcome]:
    """Run the DAG in-process with ``dag.test()`` for each date, in order; stops at the first failure.

    ``skip_tasks``: a regular expression of task ids to mark successful without running them (for
    example ``dbt_build\\..*`` to redo only publish and dispatch on an unchanged warehouse).
    ``log_file``: where Airflow's own output goes (default: the console).
    ``conf``: the runs' conf, e.g. ``{"path": "event", "topics": [...]}`` for the event-driven path
    (``pipeline.run_path``) that a landed batch takes on the real scheduler.

    The run uses ``settings`` even where they differ from what ``load_settings()`` reads (the DAG
    file and its tasks read theirs there): see :func:`settings_environment`. Afterwards this process
    is as the caller left it (logging, signal handlers, umask, ``LOYALTY_*`` variables) and the
    memory the run freed is given back (:func:`release_run_memory`): what a separate process would
    have given for free by exiting.
    """
    for day in (max(dates), min(dates)) if dates else ():  # before Airflow starts: the DAG refuses them too
        pipeline.check_run_date(settings, day)
    # One pipeline run at a time per data directory: two runs (same or different dates) would
    # write the same warehouse and alert state at once.
    with locks.exclusive(settings.data_dir / "pipeline.lock", "the pipeline", settings.lock_timeout_s):
        with _settings_in_environment(settings), _process_state_kept():
            try:
                return _run_dates(settings, dates, dag_id, progress, skip_tasks, log_file, conf)
            finally:
                release_run_memory()


def run_log_file(settings: Settings) -> Path:
    """A new file for one run's Airflow, dbt and quality-gate output (``loyalty run``, the demo)."""
    return settings.data_dir / "logs" / f"loyalty-run-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}.log"


def run_failure(settings: Settings, dates: list[dt.date], outcomes: list[RunOutcome],
                log_file: Path | None = None) -> str | None:
    """None when every date ran successfully; else where the run stopped and where to look."""
    if len(outcomes) == len(dates) and all(o.state == "success" for o in outcomes):
        return None
    if not outcomes:
        return "no run was started"
    last = outcomes[-1]
    why = "".join(f"\n  {task}: {_one_paragraph(error)}" for task, error in last.errors.items())
    rerun = f"loyalty run --as-of {last.as_of}"
    rest = [d for d in dates if d > last.as_of]
    if rest:
        step = (dates[1] - dates[0]).days if len(dates) > 1 else 1
        rerun = f"loyalty run --start {last.as_of} --end {dates[-1]}" + (f" --step {step}" if step > 1 else "")
    recipients = [a.strip() for a in str(settings.data_engineer_emails or "").split(",") if a.strip()]
    told = (f"the data engineers were notified (see {settings.data_dir / 'alerts' / 'outbox'} with the default "
            "file channel)" if recipients else
            "no data engineer was notified: data_engineer_emails (LOYALTY_DATA_ENGINEER_EMAILS) names no address; "
            "set it to theirs")
    return (f"stopped at {last.as_of}: {last.state}{why}\n"
            + told + (f"; details in {log_file}" if log_file else "")
            + f"\nfix the cause, then rerun: {rerun}"
            + (f" ({len(rest)} later date(s) were not run)" if rest else ""))


#: What a reader acts on in an error: a command in backticks (`loyalty consume`) or a setting to
#: change (LOYALTY_QUALITY__FEED_STALE_DAYS=12). A shortened line keeps every one of them whole.
_FIXES = re.compile(r"`[^`]+`|\bLOYALTY_[A-Z0-9_]+=[^\s;,]*[^\s;,.)]")


def _one_paragraph(error: str, limit: int = 1000, tail: int = 300) -> str:
    """A task's error on the console: its first paragraph, a quality gate's findings one per line.
    A line is not wrapped (the terminal does, and a command stays one piece to copy). A line
    longer than ``limit`` characters loses its middle, not its end, where the fix usually is (the
    full text is in the notice and the log); a cut never splits a command or a setting, and the
    ones that were in the part left out follow on a line of their own. Cutting the end lost the
    fix: "raise the limit for these runs: LOYAL…"."""
    text = " ".join(error.strip().split("\n\n", 1)[0].split())
    lines = text.replace("; CRITICAL ", "\n    CRITICAL ").split("\n")
    return "\n".join(_shortened(line, limit, tail) for line in lines)


def _shortened(line: str, limit: int, tail: int) -> str:
    if len(line) <= limit:
        return line
    fixes = [(found.start(), found.end()) for found in _FIXES.finditer(line)]
    space = line.rfind(" ", 0, limit - tail + 1)
    head_end = space if space > 0 else limit - tail  # at a word's end ...
    space = line.find(" ", len(line) - tail)
    tail_start = space + 1 if space >= 0 else len(line) - tail  # ... and a word's start
    for start, end in fixes:  # ... and never inside a command or a setting: before it instead
        if start < head_end < end:
            head_end = start
        if start < tail_start < end:
            tail_start = start
    if tail_start <= head_end:
        return line
    left_out = [line[start:end] for start, end in fixes if head_end <= start and end <= tail_start]
    shortened = f"{line[:head_end].rstrip()} … {line[tail_start:].lstrip()}"
    if left_out:
        shortened += "\n      (also named in the part left out: " + "; ".join(dict.fromkeys(left_out)) + ")"
    return shortened


def _env_text(value: Any) -> str:

    if isinstance(value, bool):
        return "true" if value else "false"
    return reveal(value) if not isinstance(value, (int, float, Path)) else str(value)


def settings_environment(settings: Settings) -> dict[str, str | None]:
    """The ``LOYALTY_*`` variables to set (None: to remove) so that ``load_settings()`` in this
    process gives ``settings``: only the values that differ from what it gives now.

    Why: the DAG file and each of its tasks read their settings with ``load_settings()``, as the
    separate processes of a real Airflow deployment do. An in-process run for settings that did not
    come from this environment (the demo's: its broker's address, a shorter retry delay; a caller's
    data directory) must hand them over the same way a child process got them.
    """

    current = load_settings()
    changes: dict[str, str | None] = {}
    for name in type(settings).model_fields:
        ours, theirs = getattr(settings, name), getattr(current, name)
        if ours == theirs:
            continue
        if name == "quality":
            changes.update({f"{ENV_PREFIX}QUALITY{NESTED_DELIMITER}{key.upper()}": _env_text(getattr(ours, key))
                            for key in type(ours).model_fields if getattr(ours, key) != getattr(theirs, key)})
        elif name == "kafka":
            changes.update({f"{ENV_PREFIX}KAFKA{NESTED_DELIMITER}{key.replace('.', NESTED_DELIMITER).upper()}":
                            _env_text(value) for key, value in ours.items() if theirs.get(key) != value})
        else:
            changes[ENV_PREFIX + name.upper()] = _env_text(ours)
    # An empty variable counts as unset (env_ignore_empty): remove it, the file or the default applies.
    return {key: value or None for key, value in changes.items()}


@contextlib.contextmanager
def _settings_in_environment(settings: Settings):
    """:func:`settings_environment` applied for the block and checked; afterwards the ``LOYALTY_*``
    variables are as the caller had them (also those the run exported for dbt and Airflow)."""

    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIX)}
    try:
        for key, value in settings_environment(settings).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        seen = load_settings()
        differ = [name for name in type(settings).model_fields if getattr(seen, name) != getattr(settings, name)]
        if differ:
            raise RuntimeError("the pipeline DAG reads its settings from the environment and the settings file, "
                               f"which cannot express these of the run's settings: {', '.join(differ)}")
        yield
    finally:
        for key in [key for key in os.environ if key.startswith(ENV_PREFIX) and key not in saved]:
            del os.environ[key]
        os.environ.update(saved)


#: Signals whose handlers an in-process task may leave behind (the task runner's SIGTERM handler,
#: the execution timeout's SIGALRM).
_KEPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGALRM",
                                                         "SIGUSR1", "SIGUSR2") if hasattr(signal, name))


@contextlib.contextmanager
def _process_state_kept():
    """Put back what an in-process Airflow run changes in this process: the root logger's handlers
    and level and structlog's configuration (Airflow configures logging for itself: the caller's
    later log lines would otherwise render Airflow's way, at INFO), the signal handlers its task
    runner installs (a SIGTERM after the run would go to a finished task's handler) and the umask
    (the DAG file sets its own)."""

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog_config = structlog.get_config()
    umask = os.umask(0o077)
    os.umask(umask)
    main_thread = threading.current_thread() is threading.main_thread()
    signal_handlers = {signum: signal.getsignal(signum) for signum in _KEPT_SIGNALS} if main_thread else {}
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)
        structlog.configure(**structlog_config)
        os.umask(umask)
        for signum, handler in signal_handlers.items():
            if handler is not None and signal.getsignal(signum) is not handler:
                signal.signal(signum, handler)


def release_run_memory() -> None:
    """Give back what an in-process run no longer needs: dbt-duckdb's database handle (a run that
    stops inside the dbt build leaves it open, with DuckDB's buffers, and DuckDB would refuse the
    caller's own connections to the file), then unreachable objects and the heap glibc keeps."""


    warehouse.release_duckdb()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator keeps its own counsel
        pass


def _run_dates(settings: Settings, dates: list[dt.date], dag_id: str, progress: Callable[[str], None],
               skip_tasks: str | None, log_file: Path | None,
               conf: dict[str, Any] | None = None) -> list[RunOutcome]:
    prepare_airflow(settings, progress)
    if log_file is not None:
        progress(f"Airflow, dbt and quality-gate output: {log_file}")
    # Airflow: its listener manager, after prepare_airflow() fixed the configuration
    from airflow.sdk.listener import get_listener_manager

    with _airflow_output_to(log_file):  # what loading the DAG and Airflow's plugins prints goes to the log
        dag = load_dag(dag_id)  # the manifest is ready: prepare_airflow() parsed the project
        listeners = get_listener_manager()
    outcomes = []
    freezer = _freeze_before_each_task()
    listeners.add_listener(freezer)
    failures = _task_failures()
    listeners.add_listener(failures)
    try:
        for number, day in enumerate(dates, 1):
            progress(f"[{number}/{len(dates)}] {dag_id} as of {day} ...")
            failures.errors.clear()
            started = time.monotonic()
            started_at = dt.datetime.now(dt.timezone.utc)
            logical = dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.timezone.utc)
            try:
                with _airflow_output_to(log_file, tasks=len(dag.tasks), title=f"{dag_id} {day}"):
                    run = dag.test(logical_date=logical, mark_success_pattern=skip_tasks, run_conf=conf)
            finally:
                gc.unfreeze()  # what a date's tasks froze waits for one date at most, not a whole backfill
            record_real_times(run, started_at, dt.datetime.now(dt.timezone.utc))
            state = str(getattr(run.state, "value", run.state))
            states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
            failed = sorted(task for task, ti_state in states.items() if ti_state == "failed")
            outcome = RunOutcome(day, state, time.monotonic() - started, failed,
                                 {task: failures.errors.get(task, "") for task in failed if failures.errors.get(task)},
                                 sorted(task for task, ti_state in states.items() if ti_state == "skipped"))
            outcomes.append(outcome)
            progress(f"[{number}/{len(dates)}] {dag_id} as of {day}: {state} in {outcome.seconds:.0f} s"
                     + (f" (failed: {', '.join(failed)})" if failed else ""))
            if state != "success":
                break
    finally:
        gc.unfreeze()  # collected again from here on (at exit too: duckdb's bindings report leaks otherwise)
        listeners.pm.unregister(freezer)
        listeners.pm.unregister(failures)
    return outcomes


def _task_failures() -> Any:
    """An Airflow listener that keeps each failed task's error (``errors``: task id -> text), so that
    ``loyalty run`` can say on the console why a date stopped, not only which task."""
    # Airflow: the hook marker, after prepare_airflow() fixed the configuration
    from airflow.listeners import hookimpl

    class TaskFailures:
        def __init__(self) -> None:
            self.errors: dict[str, str] = {}

        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
            if error is not None:
                self.errors[task_instance.task_id] = str(error) or type(error).__name__

    return TaskFailures()


def _freeze_before_each_task() -> object:
    """An Airflow listener that, as each task starts, collects what the tasks before it left and
    moves every object still alive out of the cyclic garbage collector's sight (gc.freeze).
    astronomer-cosmos calls gc.collect() after every dbt task; in one process running every task
    (dag.test) that walked everything Airflow, its in-process API server, dbt, Great Expectations
    and pandas had built, 0.6 to 1 million objects: 0.35-0.65 s per task, some 50 dbt tasks a run.
    Frozen, it walks only what the task itself made. Objects still die by reference counting;
    a cycle that was alive when frozen (each task's API client refers to itself) and everything it
    holds wait for _run_dates to unfreeze after the date: one date's worth, about 50 tasks."""
    # Airflow: the hook marker, after prepare_airflow() fixed the configuration
    from airflow.listeners import hookimpl

    class FreezeBeforeEachTask:
        @hookimpl
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            gc.collect()
            gc.freeze()

    return FreezeBeforeEachTask()


def record_real_times(run: Any, started_at: dt.datetime, ended_at: dt.datetime) -> None:
    """Give an in-process run its wall-clock start and end: ``dag.test()`` starts a run "at" its
    logical date, so a run of a past date showed in the UI as lasting days (``1d21:35:41``)."""
    # Airflow: only inside a run, never when this module is imported
    from airflow.models.dagrun import DagRun

    # Airflow: only inside a run, never when this module is imported
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(DagRun).filter(DagRun.id == run.id).update(
            {DagRun.start_date: started_at, DagRun.end_date: ended_at}, synchronize_session=False)
    run.start_date, run.end_date = started_at, ended_at


def date_range(start: dt.date, end: dt.date, step_days: int = 1) -> list[dt.date]:
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    if step_days < 1:
        raise ValueError("--step must be at least 1 day")
    days = [start + dt.timedelta(days=i) for i in range(0, (end - start).days + 1, step_days)]
    if days[-1] != end:
        days.append(end)  # always finish on the requested end date
    return days


# --- local stack: broker + consumer + airflow standalone -------------------------------------------

def _run_dir(settings: Settings) -> Path:
    path = settings.data_dir / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid if pid_alive(pid) else None


def _start_background(name: str, argv: list[str], env: dict[str, str], settings: Settings) -> tuple[int, Path, bool]:
    """Start ``argv`` detached with a pid file; reuse a running one. Returns (pid, log, started)."""
    run = _run_dir(settings)
    pid_file, log_file = run / f"{name}.pid", run / f"{name}.log"
    running = _read_pid(pid_file)
    if running:
        return running, log_file, False
    with log_file.open("ab") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(PROJECT_ROOT))
    pid_file.write_text(json.dumps({"pid": proc.pid, "argv": argv, "started_at": time.time()}))
    return proc.pid, log_file, True


def _stop_background(name: str, settings: Settings, timeout_s: float = 20.0) -> bool:
    pid_file = _run_dir(settings) / f"{name}.pid"
    pid = _read_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    try:  # the process leads its own session: stop its children (airflow's sub-processes) too
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    # wait for the whole group, not only its leader: airflow standalone exits before its scheduler,
    # triggerer and dag-processor do, and a `loyalty up` right after would meet them still running
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return True


def _group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies count as gone)."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


#: Airflow's SimpleAuthManager keeps the login passwords in this file (under AIRFLOW_HOME).
PASSWORD_FILE_NAME = "simple_auth_manager_passwords.json.generated"
ADMIN_USER = "admin"


def ensure_admin_password(path: Path, user: str = ADMIN_USER) -> Path:
    """The admin login of ``airflow standalone``, generated here into ``path`` with mode 0600.

    Left to itself, Airflow generates the password at first start, prints it (into
    ``<data_dir>/run/airflow.log``) and writes the file with whatever umask the process has. A file
    that already holds the user is kept (same password) and made private; the password is never
    printed: ``loyalty up`` says where the file is.
    """


    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        passwords = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        passwords = {}
    if not isinstance(passwords, dict):
        passwords = {}
    if user not in passwords:
        password = Secret(secrets.token_urlsafe(18))
        passwords[user] = password.reveal()
        replace_text(path, json.dumps(passwords) + "\n", mode=0o600)
    os.chmod(path, 0o600)
    return path


def standalone_environment(settings: Settings, bootstrap: str, host: str | None = None,
                           port: int = 8080) -> dict[str, str]:
    """The environment of ``airflow standalone`` for ``loyalty up``: API server on ``host``
    (default ``settings.airflow_host``, 127.0.0.1: this machine only) and ``port``; the admin
    password file under AIRFLOW_HOME (created 0600 by :func:`ensure_admin_password`)."""
    host = host or settings.airflow_host
    env = airflow_env(settings)
    env["LOYALTY_BOOTSTRAP_SERVERS"] = bootstrap
    env[f"AIRFLOW_CONN_{pipeline.KAFKA_CONNECTION_ID.upper()}"] = json.dumps(pipeline.kafka_connection(
        _with_bootstrap(settings, bootstrap)))
    env["AIRFLOW__API__HOST"] = host
    env["AIRFLOW__API__PORT"] = str(port)
    # tasks call the API server; on every interface it is still reachable on the loopback address
    local = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://{_url_host(local)}:{port}/execution/")
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
                   str(Path(env["AIRFLOW_HOME"]) / PASSWORD_FILE_NAME))
    return env


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


#: The DAGs ``loyalty up`` schedules: the daily pipeline (and its Kafka watcher) and the weekly report.
STACK_DAG_IDS = (pipeline.DAG_ID, pipeline.REPORT_DAG_ID)

# Runs in a child process with the stack's Airflow environment: Airflow fixes its configuration
# (which database) at first import, and `loyalty up` itself never imports Airflow.
_UNPAUSE_SCRIPT = """
import json, sys
from sqlalchemy import select
from airflow.models.dag import DagModel
from airflow.utils.session import create_session

found = {}
with create_session() as session:
    for model in session.scalars(select(DagModel).where(DagModel.dag_id.in_(json.loads(sys.argv[1])))):
        found[model.dag_id] = bool(model.is_paused)
        model.is_paused = False
print(json.dumps(found))
"""


def unpause_dags(env: dict[str, str], dag_ids: tuple[str, ...] = STACK_DAG_IDS,
                 timeout_s: float = 300.0) -> dict[str, str]:
    """Unpause ``dag_ids`` in the metadata database of ``env`` (Airflow's own ``DagModel``, as
    ``airflow dags unpause`` does it); returns what each was: ``unpaused`` (it was paused),
    ``already unpaused`` or ``not registered yet``.

    Why: ``AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False`` only applies to a DAG Airflow has not
    seen; in-process runs (``loyalty run``, ``make demo``) register the DAGs paused first.
    """
    done = subprocess.run([sys.executable, "-c", _UNPAUSE_SCRIPT, json.dumps(list(dag_ids))], env=env,
                          capture_output=True, text=True, timeout=timeout_s, cwd=str(PROJECT_ROOT))
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError("could not unpause the DAGs: " + " | ".join(tail))
    was_paused = json.loads(done.stdout.strip().splitlines()[-1])
    return {dag_id: ("not registered yet" if dag_id not in was_paused
                     else "unpaused" if was_paused[dag_id] else "already unpaused") for dag_id in dag_ids}


def _metadata_db_exists(env: dict[str, str]) -> bool:
    """False only for a SQLite metadata database that has no file yet (no DAG can be in it)."""
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if not conn.startswith("sqlite:///"):
        return True
    return Path(conn[len("sqlite:///"):].split("?")[0]).exists()


def wait_for_http(url: str, timeout_s: float, interval_s: float = 1.0) -> bool:
    """Whether ``url`` answers HTTP (any status) within ``timeout_s``."""

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except urllib.error.HTTPError:
            return True  # it answers: a status is an answer
        except (OSError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def up(settings: Settings, port: int = 8080, progress: Callable[[str], None] = print,
       host: str | None = None, wait_s: float = 0.0) -> dict[str, Any]:
    """Start the embedded broker, the consumer, ``airflow standalone`` and the web app (idempotent),
    with both DAGs unpaused.

    ``wait_s`` > 0: then wait up to that long until the Airflow UI answers (``loyalty up`` waits
    300 s); ``info["ui_answers"]`` says whether it did.
    """

    host = host or settings.airflow_host
    prepare_dbt_manifest(settings, progress)
    state = broker.start(settings)
    progress(f"broker: {state.bootstrap_servers} (pid {state.pid})")
    env = standalone_environment(settings, state.bootstrap_servers, host, port)
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    password_file = ensure_admin_password(Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]))
    ensure_migrated(home, env, progress)
    dags = {dag_id: "not registered yet" for dag_id in STACK_DAG_IDS}
    if _metadata_db_exists(env):
        # Before the scheduler starts: DAGs an in-process run registered (paused) are scheduled from
        # its first loop; DAGs Airflow has not seen yet are created unpaused (standalone_environment).
        dags = unpause_dags(env)
    shown = {"unpaused": "unpaused", "already unpaused": "unpaused",
             "not registered yet": "unpaused once Airflow has parsed it"}
    progress("DAGs: " + ", ".join(f"{dag_id} {shown[how]}" for dag_id, how in dags.items()))
    # The services by their module entry points (the library does not run its own CLI).
    pid, log_file, started = _start_background("consumer", [sys.executable, "-m", "streaming.consumer"], env,
                                               settings)
    progress(f"consumer: pid {pid}{'' if started else ' (already running)'}; log {log_file}")
    pid, airflow_log, started = _start_background("airflow", [str(_venv_bin() / "airflow"), "standalone"], env,
                                                  settings)
    progress(f"airflow standalone: pid {pid}{'' if started else ' (already running)'}; log {airflow_log}")
    pid, log_file, started = _start_background("web", [sys.executable, "-m", "loyalty_monitor.web"], env, settings)
    progress(f"web app: {settings.web_url} (pid {pid}{'' if started else ', already running'}; log {log_file}); "
             f"sign in with a link from `loyalty web link EMAIL`")
    everywhere = host in ("0.0.0.0", "::", "")
    ui = f"http://{'localhost' if everywhere else _url_host(host)}:{port}"
    login = f"user {ADMIN_USER}; the password is in {password_file}, readable by you only"
    answers = None
    if wait_s > 0:
        local = f"http://{'127.0.0.1' if everywhere else _url_host(host)}:{port}"
        progress(f"waiting for the Airflow UI to answer at {ui} (up to {wait_s:.0f} s) ...")
        started_wait = time.monotonic()
        answers = wait_for_http(f"{local}/api/v2/monitor/health", wait_s)
        if answers:
            progress(f"Airflow UI: {ui} ({login}); it answered after {time.monotonic() - started_wait:.0f} s")
        else:
            progress(f"Airflow UI: {ui} did not answer within {wait_s:.0f} s; it may still be starting "
                     f"(see {airflow_log}); {login}")
    else:
        progress(f"Airflow UI: {ui} in about a minute ({login})")
    if everywhere:
        progress(f"note: the Airflow UI listens on every network interface ({host}): anyone who can reach "
                 f"this machine gets its login page")
    return {"broker": state.bootstrap_servers, "airflow_home": str(home), "ui": ui, "host": host,
            "password_file": str(password_file), "dags": dags, "ui_answers": answers}


def _with_bootstrap(settings: Settings, bootstrap: str) -> Settings:
    return settings.replace(bootstrap_servers=bootstrap)


def down(settings: Settings, progress: Callable[[str], None] = print) -> None:
    """Stop the web app, airflow standalone, the consumer and the embedded broker (in that order)."""

    for name in ("web", "airflow", "consumer"):
        progress(f"{name}: {'stopped' if _stop_background(name, settings) else 'was not running'}")
    progress(f"broker: {'stopped' if broker.stop(settings) else 'was not running'}")
