"""Small helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from loyalty_core.files import require_regular_target


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def example(*lines: str) -> dict[str, Any]:
    """``add_parser`` keyword arguments for a help text that ends with examples, shown as written.

    >>> sub.add_parser("report", help="...", **example("loyalty report --out report.html"))
    """
    return {"epilog": "example:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _number(text: str, kind: type) -> Any:
    """``text`` as an int or a float, or the argparse error that says it is not one."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None


def positive_int(text: str) -> int:
    """An argparse ``type=``: a whole number of at least 1 (days, customers, ...)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type=``: a finite number above 0 (days a link lasts, a rate, ...)."""
    value = _number(text, float)
    if not math.isfinite(value) or value <= 0:  # nan compares false with everything: say it here
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def require_data_dir(settings: Any) -> None:
    """For commands that act on what is already there: a data directory that does not exist is a
    wrong path (LOYALTY_DATA_DIR), not an empty installation to create."""
    if not Path(settings.data_dir).is_dir():
        raise ValueError(f"no data directory at {settings.data_dir}: check LOYALTY_DATA_DIR (or data_dir in the "
                         "settings file); nothing was read or changed")


def output_file(text: str) -> str:
    """An argparse ``type=``: a file to write (not empty, not an existing directory, device, FIFO or
    socket)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("give a file name")
    if Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory: name a file in it")
    try:
        require_regular_target(Path(text))  # /dev/full or a FIFO was replaced by the written file
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def share(text: str) -> float:
    """An argparse ``type=``: a number from 0 to 1."""
    value = _number(text, float)
    if not 0 <= value <= 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value
