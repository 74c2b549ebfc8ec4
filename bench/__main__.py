"""Run every benchmark module in turn (``make bench``); extra arguments are passed to each."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    modules = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    failed = 0
    for name in modules:
        print(f"\n=== bench.{name} ===", flush=True)
        failed += subprocess.call([sys.executable, "-m", f"bench.{name}", *sys.argv[1:]]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
