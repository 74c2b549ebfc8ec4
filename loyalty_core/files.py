"""Writing a small file whole or not at all: a reader (another process, a browser, dbt) sees the
old content or the new one, never half of it, and two writers never share a temporary file."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def replace_text(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to a hidden temporary sibling of ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding=encoding)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
