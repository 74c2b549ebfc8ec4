"""Small helpers shared by the sub-command modules."""

from __future__ import annotations

import argparse
import json
from typing import Any


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def example(*lines: str) -> dict[str, Any]:
    """``add_parser`` keyword arguments for a help text that ends with examples, shown as written.

    >>> sub.add_parser("report", help="...", **example("loyalty report --out report.html"))
    """
    return {"epilog": "example:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def positive_int(text: str) -> int:
    """An argparse ``type=``: a whole number of at least 1 (days, customers, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
