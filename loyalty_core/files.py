"""Replacing a file whole or not at all: a reader (another process, a browser, dbt) sees the old
content or the new one, never half of it, and two writers never share a temporary file.

One mechanism for every writer of the project that replaces a file (the quality gate's records,
reports, the outbox, exports, the erasure's rewrites, Airflow's database template): write a hidden
temporary sibling, then rename it over the file. A file made once and never replaced (a secret
key: ``create_once``) is linked into place instead, so that of two processes making it at once
one wins and the other reads the winner's. The landing zone keeps its own protocol
(``loyalty_core.landing_zone``: its temporary names and manifests are part of exactly-once).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: What every temporary sibling's name ends with (readers that walk a directory skip them).
TMP_SUFFIX = ".tmp"


def temporary_sibling(path: Path) -> Path:
    """A hidden name beside ``path`` that no other writer, in this process or another, uses."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` survive a power cut."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: What a file that is not a regular file is, in words.
_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def require_regular_target(path: Path) -> None:
    """Refuse to replace anything but a regular file (or nothing): a rename over ``/dev/full`` or a
    FIFO replaces the device or the pipe itself with a plain file. Raises :class:`ValueError` naming
    what ``path`` is (a symbolic link is judged by what it points to)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISREG(mode):
        return
    kind = next((words for test, words in _KINDS if test(mode)), "not a regular file")
    raise ValueError(f"{path} is {kind}, not a regular file: writing would replace it with a plain file, so nothing "
                     "was written; name a regular file (a new one or one to overwrite)")


@contextlib.contextmanager
def replacing(path: Path, *, mode: int | None = None, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (by any means: a Parquet writer, SQLite's
    backup, a copy); when the block ends without an error it is renamed over ``path``, otherwise
    removed and ``path`` left as it was.

    ``mode``: the permission bits of the new file; by default those of the file it replaces (a
    private file stays private), or as created when there was none. ``path`` must be a regular file
    or not exist (``require_regular_target``): a device or a FIFO is never replaced. ``durable``: fsync the file and
    its directory before returning, for what must survive a power cut (an erasure, its register).
    """
    path = Path(path)
    require_regular_target(path)
    tmp = temporary_sibling(path)
    try:
        yield tmp
        if mode is None:
            with contextlib.suppress(FileNotFoundError):
                mode = os.stat(path).st_mode & 0o777
        if mode is not None:
            os.chmod(tmp, mode)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def create_once(path: Path, data: bytes, *, mode: int = 0o600) -> bool:
    """Create ``path`` holding ``data`` unless it exists, so that no reader ever sees it empty or
    half written: the data goes to a temporary sibling (``mode``, private by default), is fsynced,
    and is then hard-linked to ``path``, which fails when the file is already there. True when this
    call made the file; False when it existed (another process won the race: read that one).

    Not ``O_CREAT | O_EXCL`` on the file itself: between its creation and the write another
    process would find it, empty, and use an empty secret.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        _write_new(tmp, data, mode)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            # a file system without hard links (some network and FUSE mounts, exFAT): create the
            # file exclusively and write it; a reader racing this one may then see it short, and
            # the callers refuse a short secret rather than use it
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS):
                raise
            return _create_exclusively(path, data, mode)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (FileExistsError if it is there) with exactly ``mode``, whatever the umask,
    holding ``data``, fsynced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_exclusively(path: Path, data: bytes, mode: int) -> bool:
    try:
        _write_new(path, data, mode)
    except FileExistsError:
        return False
    fsync_dir(path.parent)
    return True


def replace_with(path: Path, write: Callable[[BinaryIO], object], *, mode: int | None = None,
                 durable: bool = False) -> None:
    """Replace ``path`` with what ``write(fh)`` writes to a binary file (``replacing``'s rules). When
    the new file gets a mode, or the old one's, its temporary file is private (0600) until then, so
    a private file's content is never readable on its way."""
    path = Path(path)
    # a new file without a mode is created as any file of this process is (0666 less the umask)
    created = 0o666 if mode is None and not path.exists() else 0o600
    with replacing(path, mode=mode, durable=durable) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, created)
        with os.fdopen(fd, "wb") as fh:
            write(fh)


def replace_text(path: Path, text: str | Iterable[str], encoding: str = "utf-8", *, mode: int | None = None,
                 durable: bool = False) -> None:
    """Replace ``path`` with ``text`` (a string, or lines to write one after the other)."""
    chunks = [text] if isinstance(text, str) else text
    replace_with(path, lambda fh: fh.writelines(chunk.encode(encoding) for chunk in chunks),
                 mode=mode, durable=durable)
