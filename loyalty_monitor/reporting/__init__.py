"""The leadership report: one self-contained HTML file built from the published marts."""

from loyalty_monitor.reporting.render import ReportError, build_context, render_html, render_report

__all__ = ["ReportError", "build_context", "render_html", "render_report"]
