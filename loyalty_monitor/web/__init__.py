"""The account managers' web app (``loyalty web``, docs/web.md): My customers, One customer, My queue.

``create_app(settings)`` is the ASGI app; ``serve(settings)`` runs it with uvicorn; sign-in links
come from ``loyalty_monitor.access.sign_in_link(settings, email)``.
"""

from loyalty_monitor.access import sign_in_link
from loyalty_monitor.web.app import BackgroundServer, create_app, serve

__all__ = ["BackgroundServer", "create_app", "serve", "sign_in_link"]
