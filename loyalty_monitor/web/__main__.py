"""``python -m loyalty_monitor.web``: the web app as a service, what ``loyalty up`` starts (the
``loyalty web`` command serves the same app in the foreground)."""

from __future__ import annotations

import sys

from loyalty_core import logs
from loyalty_core.settings import load_settings
from loyalty_monitor.web.app import serve


def main() -> int:
    settings = load_settings()
    logs.configure(settings.log_format)
    print(f"Loyalty Monitor web app on {settings.web_url}", flush=True)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
