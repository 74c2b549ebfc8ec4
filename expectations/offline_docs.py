"""Great Expectations Data Docs that open offline, and show the validations there.

GX 1.x writes its Data Docs as static HTML that loads Bootstrap, bootstrap-table, jQuery, popper,
Font Awesome and Vega from CDNs and the GX logo from GX's servers. The index page's list of
validations is a bootstrap-table that a script fills from data inlined in the page, so on a machine
without internet the index is an empty table, and every page asks seven servers for files.

After each build the gate calls :func:`make_offline`, which rewrites the pages it names (the index
and the run's validation pages) in place:

- every script and stylesheet loaded from another server is removed, and the logo points at the
  copy GX already put under ``static/images/``: opening the docs makes no request at all;
- each bootstrap-table script is replaced by the table it would have drawn, rendered here from the
  same inlined data: newest run first, each row linking to its validation page, a failed
  validation marked in words;
- the remaining inline scripts (filters, "show more" buttons, which need jQuery) are removed, and
  the buttons that called them hidden; Vega charts, which GX draws only for distribution
  expectations (none of ours), would be replaced by a note;
- one small inline stylesheet gives back the layout Bootstrap gave (tables, cards, badges) and
  draws Font Awesome's status icons as symbols with words (✓ success, ✗ failed), which also print.

Rewriting is idempotent (a rewritten page carries a marker and is left alone), and a page it cannot
understand is left as GX wrote it: the offline gate-runs page (``gate_runs.html``) still lists every
run with its findings and links.
"""

from __future__ import annotations

import ast
import html
import os
import re
from pathlib import Path
from typing import Any, Iterable

from loyalty_core.files import replace_text

MARKER = "loyalty-offline-docs"

_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']https?://[^\"']*[\"'][^>]*>\s*</script>\s*",
                            re.IGNORECASE)
_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']https?://[^\"']*[\"'][^>]*>\s*", re.IGNORECASE)
_REMOTE_LOGO = re.compile(r"(<img\b[^>]*\bsrc\s*=\s*[\"'])https?://[^\"']*/(logo-long\.png|short-logo\.png)"
                          r"(?:\?[^\"']*)?([\"'])", re.IGNORECASE)
_REMOTE_CSS_URL = re.compile(r"url\(\s*['\"]?https?://[^)'\"]*['\"]?\s*\)", re.IGNORECASE)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>\s*", re.IGNORECASE | re.DOTALL)
_TABLE_SCRIPT = re.compile(
    r"\$\(\s*'#(?P<id>[\w-]+)'\s*\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns:\s*(?P<columns>\[.*?\]),\s*data:\s*(?P<data>\[.*?\]),\s*toolbar:\s*'[^']*'\s*\},\s*"
    r"(?P<options>\{.*?\})\s*\)\s*\);", re.DOTALL)
_EMPTY_TABLE = r"<table\s+id=\"{id}\"[^>]*>\s*</table>"
_HEAD_END = re.compile(r"</head>", re.IGNORECASE)
#: GX counts the ../ to its static files from the suite name, which is one level short for a
#: validation page; every relative path to static/ is set from the page's real depth.
_STATIC = re.compile(r'((?:href|src)\s*=\s*["\'])(?:\./|\.\./)*static/')
_ICON = re.compile(r'<i\b[^>]*\bclass="(?P<classes>[^"]*\bfa-(?P<icon>[a-z-]+)\b[^"]*)"[^>]*>\s*</i>')
#: Font Awesome's icons as words: the status must not depend on a web font (nor on colour).
ICONS = {"check-circle": "✓ passed", "times": "✗ failed", "times-circle": "✗ failed",
         "exclamation-triangle": "⚠ error", "question-circle": "?", "comment": ""}

#: Bootstrap's layout in a few rules, and Font Awesome's icons as symbols that print.
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       color: #1a1a1a; margin: 0; }
a { color: #0b5cad; }
nav.navbar { display: flex; align-items: center; gap: 16px; padding: 8px 24px; height: auto !important;
             border-bottom: 1px solid #ddd; }
.navbar-brand img { height: 32px; }
.container-fluid { padding: 16px 24px; }
.row { display: flex; flex-wrap: wrap; gap: 16px; }
.row > [class*="col-md-2"] { flex: 0 0 220px; }
.row > [class*="col-md-10"] { flex: 1 1 600px; min-width: 0; }
.col-12 { width: 100%; }
.d-none { display: none; }
.ge-section { margin-bottom: 24px; }
.card { border: 1px solid #ddd; border-radius: 4px; margin-bottom: 12px; }
.card-header { background: #f5f5f5; padding: 6px 12px; border-bottom: 1px solid #ddd; }
.card-body { padding: 8px 12px; }
.alert { border: 1px solid #ddd; background: #f7f7f7; padding: 6px 10px; border-radius: 4px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; background: #eee; font-size: 12px; }
.breadcrumb { display: flex; gap: 6px; list-style: none; padding: 0; }
.nav { list-style: none; padding-left: 0; }
table, .table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #e3e3e3; }
th { background: #f2f2f2; }
thead[hidden] { display: none; }
.show-scrollbars { overflow-x: auto; }
.cooltip .top, .cooltip .bottom { display: none; }
.text-success { color: #00664a; }
.text-danger { color: #a32000; }
.text-warning { color: #7a5b00; }
.offline-icon { font-weight: 700; white-space: nowrap; }
tr.offline-failed td { background: #fdecea; }
.offline-note { border: 1px dashed #999; padding: 6px 10px; color: #444; }
[onclick], .btn-group-toggle, [data-toggle="buttons"] { display: none !important; }
@media print { nav.navbar, .row > [class*="col-md-2"] { display: none; } }
"""


def make_offline(site: Path, run_name: str | None = None) -> list[Path]:
    """Rewrite the site's index and the validation pages of ``run_name`` (every page when None).

    Returns the pages rewritten. Pages already rewritten are left alone."""
    site = Path(site)
    if not site.is_dir():
        return []
    if run_name is None:
        pages: Iterable[Path] = site.rglob("*.html")
    else:
        pages = [site / "index.html", *site.glob(f"validations/*/{glob_escape(run_name)}/*/*.html"),
                 *site.glob("expectations/*.html")]
    done = []
    for page in pages:
        if page.name.startswith(".") or not page.is_file():
            continue
        text = page.read_text(encoding="utf-8", errors="replace")
        if MARKER in text or "Great Expectations" not in text:
            continue  # already offline, or not a GX page (gate_runs.html is ours)
        rewritten = rewrite(text, site, page)
        replace_text(page, rewritten)
        done.append(page)
    return done


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def rewrite(text: str, site: Path, page: Path) -> str:
    """One GX page made self-contained (see the module doc)."""
    root = os.path.relpath(site, page.parent).replace(os.sep, "/")
    prefix = "" if root == "." else root + "/"

    tables: dict[str, str] = {}

    def script(match: re.Match[str]) -> str:
        body = match.group(1)
        found = _TABLE_SCRIPT.search(body)
        if found:
            rendered = _render_table(found, site, page)
            if rendered is not None:
                tables[found.group("id")] = rendered
            return ""
        if "vegaEmbed" in body:
            return ("<p class='offline-note'>A chart drawn by an online script is left out of the offline "
                    "Data Docs; its figures are in the table beside it.</p>\n")
        return ""

    text = _REMOTE_SCRIPT.sub("", text)
    text = _REMOTE_LINK.sub("", text)
    text = _REMOTE_LOGO.sub(lambda m: f"{m.group(1)}{prefix}static/images/{m.group(2)}{m.group(3)}", text)
    text = _REMOTE_CSS_URL.sub("none", text)
    text = _STATIC.sub(lambda m: f"{m.group(1)}{prefix}static/", text)
    text = _INLINE_SCRIPT.sub(script, text)
    text = _ICON.sub(_icon, text)
    text = _drop_dead_links(text, site, page)
    for table_id, rendered in tables.items():
        text, count = re.subn(_EMPTY_TABLE.format(id=re.escape(table_id)), lambda _: rendered, text, count=1)
        if not count:
            text = text.replace("</body>", rendered + "</body>", 1)
    style = f'<style id="{MARKER}">{STYLE}</style>\n'
    text, count = _HEAD_END.subn(lambda _: style + "</head>", text, count=1)
    if not count:
        text = style + text
    return text


def _icon(match: re.Match[str]) -> str:
    words = ICONS.get(match.group("icon"))
    if words is None:
        return ""
    classes = " ".join(c for c in match.group("classes").split() if not c.startswith("fa"))
    return f'<span class="offline-icon {classes}">{words}</span>'


def _literal(source: str) -> Any:
    return ast.literal_eval(source)


def _render_table(found: re.Match[str], site: Path, page: Path) -> str | None:
    """The table bootstrap-table would have drawn from the page's inlined columns and rows."""
    try:
        columns = _literal(found.group("columns"))
        rows = _literal(found.group("data"))
        options = _literal(found.group("options"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(columns, list) or not isinstance(rows, list):
        return None
    sort_field = options.get("sortName") if isinstance(options, dict) else None
    sort_key = next((c.get("sortName") or sort_field for c in columns if c.get("field") == sort_field), sort_field)
    if sort_key:
        descending = str(options.get("sortOrder", "asc")).lower() == "desc"
        rows = sorted(rows, key=lambda r: _sortable(r.get(sort_key)), reverse=descending)
    head = "".join(f"<th>{html.escape(str(c.get('title', c.get('field', ''))))}</th>" for c in columns)
    body = []
    for row in rows:
        link = row.get("_table_row_link_path")
        failed = str(row.get("_validation_success_text", "")).lower() not in ("", "success")
        cells = []
        for i, column in enumerate(columns):
            value = row.get(column.get("field"), "")
            cell = str(value) if value is not None else ""
            cell = _ICON.sub(_icon, _drop_dead_links(cell, site, page))
            if i == 1 and link:  # the run time opens the validation page (the row did, by script)
                cell = f'<a href="{html.escape(str(link))}">{cell}</a>'
            cells.append(f"<td>{cell}</td>")
        row_class = ' class="offline-failed"' if failed else ""
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    table_id = html.escape(found.group("id"))
    return (f'<table id="{table_id}" class="table offline-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
            f"<p class='offline-note'>{len(rows)} validation(s), newest first. Each run time opens the "
            f"validation's results. The gate's runs with their findings: "
            f"<a href='gate_runs.html'>gate_runs.html</a>.</p>")


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)):
        return (0, value)
    return (1, str(value))


_HREF = re.compile(r'<a\b[^>]*\bhref="([^"#:]+\.html)"[^>]*>(.*?)</a>', re.DOTALL)


def _drop_dead_links(cell: str, site: Path, page: Path) -> str:
    """A link to a page GX did not build (suite pages are not built per run) becomes its text."""
    def check(match: re.Match[str]) -> str:
        target = (page.parent / match.group(1)).resolve()
        return match.group(0) if target.exists() else match.group(2)

    return _HREF.sub(check, cell)
