"""Replacing a file whole or not at all (loyalty_core/files.py): every writer of the project that
replaces a file goes through it, so its promises are proven here on the real file system."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading

import pytest

from loyalty_core.files import TMP_SUFFIX, create_once, replace_text, replace_with, replacing


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(TMP_SUFFIX))


def test_text_and_lines_replace_the_file_and_leave_no_temporary_file(tmp_path):
    path = tmp_path / "state.json"
    replace_text(path, "first\n")
    assert path.read_text() == "first\n"
    replace_text(path, (f"line {i}\n" for i in range(3)))
    assert path.read_text() == "line 0\nline 1\nline 2\n"
    assert _leftovers(tmp_path) == []


def test_a_new_file_gets_the_umask_mode_a_replaced_one_keeps_its_own_and_a_given_mode_wins(tmp_path):
    umask = os.umask(0o022)
    try:
        new = tmp_path / "report.html"
        replace_text(new, "<p>")
        assert _mode(new) == 0o644
        private = tmp_path / "passwords.json"
        private.write_text("{}")
        private.chmod(0o600)
        replace_text(private, '{"a": 1}')
        assert _mode(private) == 0o600, "a private file stays private when it is replaced"
        export = tmp_path / "dead-letters.jsonl"
        replace_text(export, "{}\n", mode=0o600)
        assert _mode(export) == 0o600
        replace_text(export, "{}\n", mode=0o640)
        assert _mode(export) == 0o640
    finally:
        os.umask(umask)


def test_a_writer_that_fails_leaves_the_old_file_as_it_was_and_no_temporary_file(tmp_path):
    path = tmp_path / "erased_churn.parquet"
    path.write_bytes(b"old")

    def half_then_fail(fh):
        fh.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_with(path, half_then_fail, durable=True)
    assert path.read_bytes() == b"old"
    with pytest.raises(KeyboardInterrupt), replacing(path) as tmp:
        tmp.write_bytes(b"new")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_any_writer_can_fill_the_temporary_file_here_sqlites_backup(tmp_path):
    source = tmp_path / "airflow.db"
    with sqlite3.connect(source) as con:
        con.execute("create table t (x)")
        con.execute("insert into t values (42)")
    con.close()
    copy_path = tmp_path / "template.db"
    with replacing(copy_path, mode=0o600, durable=True) as tmp:
        assert not copy_path.exists(), "nothing stands at the path before the copy is complete"
        with sqlite3.connect(source) as src, sqlite3.connect(tmp) as dst:
            src.backup(dst)
        src.close()
        dst.close()
    with sqlite3.connect(copy_path) as con:
        assert con.execute("select x from t").fetchall() == [(42,)]
    con.close()
    assert _mode(copy_path) == 0o600 and _leftovers(tmp_path) == []


def test_readers_see_one_whole_version_while_two_writers_replace_the_file(tmp_path):
    """Two threads replace the same file with 1 MB of their own letter while a third reads it: every
    read is one writer's whole content (no shared temporary file, no half-written file)."""
    path = tmp_path / "runs.html"
    size = 1_000_000
    replace_text(path, "A" * size)
    stop = threading.Event()
    errors: list[BaseException] = []

    def write(letter: str) -> None:
        try:
            for _ in range(40):
                replace_text(path, letter * size)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)

    seen: set[str] = set()

    def read() -> None:
        while not stop.is_set():
            text = path.read_text()
            assert len(text) == size and len(set(text)) == 1, (len(text), set(text))
            seen.add(text[0])

    writers = [threading.Thread(target=write, args=(letter,)) for letter in "AB"]
    failures: list[BaseException] = []

    def guarded_read() -> None:
        try:
            read()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)

    reader = threading.Thread(target=guarded_read)
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert not errors and not failures, (errors, failures)
    assert path.read_text() in ("A" * size, "B" * size)
    assert seen, "the reader read the file"
    assert _leftovers(tmp_path) == []


def test_a_file_made_once_is_private_whole_and_never_replaced(tmp_path):
    """A secret key: the first maker wins, a later one reads the first one's (False), and the file
    is 0600 whatever the umask."""
    path = tmp_path / "key"
    umask = os.umask(0)
    try:
        assert create_once(path, b"first-key-0123456789\n") is True
    finally:
        os.umask(umask)
    assert _mode(path) == 0o600 and path.read_bytes() == b"first-key-0123456789\n"
    assert create_once(path, b"second") is False
    assert path.read_bytes() == b"first-key-0123456789\n" and _leftovers(tmp_path) == []


def test_a_file_made_once_where_the_file_system_has_no_hard_links(tmp_path, monkeypatch):
    """Review: on a mount without hard links (CIFS, some FUSE, exFAT: none can be mounted here, so
    os.link is made to fail as they do) the first erasure or web start died with an OSError."""
    import errno

    def no_links(*_args):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "key"
    assert create_once(path, b"first-key-0123456789\n") is True
    assert _mode(path) == 0o600 and path.read_bytes() == b"first-key-0123456789\n"
    assert create_once(path, b"second") is False and path.read_bytes() == b"first-key-0123456789\n"
    assert _leftovers(tmp_path) == []


def _at_once(threads: int, call):
    """What ``call()`` returns in each of ``threads`` threads started together (or what it raised)."""
    barrier = threading.Barrier(threads)
    results: list[object] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test thread
            results.append(exc)

    started = [threading.Thread(target=run) for _ in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return results


def test_makers_racing_for_a_file_made_once_all_see_one_whole_content(tmp_path):
    """Eight threads make the same file at once, 30 times over: each finds it whole (the key a web
    app signs with was read empty by a second process while the first had not yet written it)."""
    for round_ in range(30):
        path = tmp_path / f"key-{round_}"
        results = _at_once(8, lambda path=path: (create_once(path, os.urandom(32).hex().encode()),
                                                 path.read_bytes()))
        assert [made for made, _ in results].count(True) == 1, results
        assert len({content for _, content in results}) == 1 and len(results[0][1]) == 64, results
    assert _leftovers(tmp_path) == []


def test_a_device_or_a_fifo_is_never_replaced(tmp_path):
    """A rename over a FIFO (or /dev/full) replaced it with a plain file: refused, in words."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe is a FIFO \(named pipe\), not a regular file: writing would replace"):
        replace_text(fifo, "report")
    with pytest.raises(ValueError, match="is a directory, not a regular file"):
        replace_text(tmp_path, "report")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and _leftovers(tmp_path) == []
