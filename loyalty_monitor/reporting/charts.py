"""Server-side SVG charts for the leadership report: no scripts, no fonts, nothing fetched.

Readable in print and for colour-blind readers: the palette is Okabe-Ito, and status is never told
by colour alone: every status has a fill pattern, a shape and a word ("Red ▲"). Every text that
reaches a chart goes through ``escape`` (names come from master data and events).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Sequence

from markupsafe import Markup, escape

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
STATUS_STYLE = {
    "red": {"label": "Red", "symbol": "▲", "colour": "#D55E00", "pattern": "url(#pat-red)"},
    "yellow": {"label": "Yellow", "symbol": "◆", "colour": "#F0E442", "pattern": "url(#pat-yellow)"},
    "green": {"label": "Green", "symbol": "●", "colour": "#009E73", "pattern": "url(#pat-green)"},
}
STATUS_ORDER = ("red", "yellow", "green")
INK = "#1a1a1a"
MUTED = "#666666"
BLUE = "#0072B2"
SKY = "#56B4E9"
PURPLE = "#CC79A7"
ORANGE = "#E69F00"
PALETTE = {"blue": BLUE, "sky": SKY, "orange": ORANGE, "purple": PURPLE}
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


def status_label(status: str) -> str:
    style = STATUS_STYLE.get(status)
    return f"{style['label']} {style['symbol']}" if style else str(status)


def _attrs(attrs: dict[str, Any]) -> str:
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items()
                   if v is not None)


def _text(x: float, y: float, content: Any, **attrs: Any) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}"{_attrs(attrs)}>{escape(content)}</text>'


def _rect(x: float, y: float, w: float, h: float, **attrs: Any) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}"{_attrs(attrs)}/>'


def _svg(width: int, height: int, body: Iterable[str], title: str, desc: str = "") -> Markup:
    """An accessible SVG: role=img with a title (and description) screen readers announce."""
    desc_el = f"<desc>{escape(desc)}</desc>" if desc else ""
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" class="chart" style="{FONT}">'
        f"<title>{escape(title)}</title>{desc_el}{''.join(body)}</svg>")


def defs() -> Markup:
    """The fill patterns, defined once per document and referenced by every chart."""
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" width="0" height="0" aria-hidden="true" '
        'style="position:absolute"><defs>'
        # Red: dense diagonal hatching.
        '<pattern id="pat-red" patternUnits="userSpaceOnUse" width="8" height="8" '
        'patternTransform="rotate(45)"><rect width="8" height="8" fill="#D55E00"/>'
        '<rect width="3" height="8" fill="#ffffff" fill-opacity="0.55"/></pattern>'
        # Yellow: dots.
        '<pattern id="pat-yellow" patternUnits="userSpaceOnUse" width="7" height="7">'
        '<rect width="7" height="7" fill="#F0E442"/><circle cx="3.5" cy="3.5" r="1.3" fill="#6b5d00"/>'
        '</pattern>'
        # Green: solid.
        '<pattern id="pat-green" patternUnits="userSpaceOnUse" width="8" height="8">'
        '<rect width="8" height="8" fill="#009E73"/></pattern>'
        # Pending / not yet due: light cross-hatch.
        '<pattern id="pat-pending" patternUnits="userSpaceOnUse" width="8" height="8">'
        '<rect width="8" height="8" fill="#eeeeee"/><path d="M0 8 L8 0" stroke="#888" stroke-width="1"/>'
        '</pattern>'
        '</defs></svg>')


def legend(items: Sequence[tuple[str, str]], x: float, y: float, line_h: float = 0) -> list[str]:
    """Legend entries (fill, label) in one row, or one per line when ``line_h`` is given."""
    out, cx, cy = [], x, y
    for fill, label in items:
        out.append(_rect(cx, cy - 11, 14, 14, fill=fill, stroke=INK, stroke_width="0.6"))
        out.append(_text(cx + 19, cy, label, font_size="12", fill=INK))
        if line_h:
            cy += line_h
        else:
            cx += 26 + 7.2 * len(label)
    return out


def status_legend(x: float, y: float) -> list[str]:
    return legend([(STATUS_STYLE[s]["pattern"], status_label(s)) for s in STATUS_ORDER], x, y)


def status_bar(counts: dict[str, int], width: int = 960) -> Markup:
    """The portfolio today: one bar split by status, each part labelled with word, count and share."""
    total = sum(counts.values()) or 1
    height, bar_y, bar_h = 92, 8, 44
    body, x = [], 0.0
    for status in STATUS_ORDER:
        n = counts.get(status, 0)
        w = width * n / total
        style = STATUS_STYLE[status]
        if n:
            body.append(_rect(x, bar_y, w, bar_h, fill=style["pattern"], stroke="#ffffff", stroke_width="1"))
            label = f"{status_label(status)} {n} ({n / total:.0%})"
            if w > 7.8 * len(label) + 14:
                # A white plate keeps the label readable on any pattern.
                body.append(_rect(x + 4, bar_y + 11, 7.8 * len(label) + 8, 22, fill="#ffffff",
                                  fill_opacity="0.9", rx="3"))
                body.append(_text(x + 7, bar_y + 27, label, font_size="13", font_weight="600", fill=INK))
        x += w
    body += status_legend(0, 80)
    desc = ", ".join(f"{status_label(s)}: {counts.get(s, 0)} of {total}" for s in STATUS_ORDER)
    return _svg(width, height, body, "Customers by status today", desc)


def trend_chart(trend: list[dict[str, Any]], width: int = 960) -> Markup:
    """Weekly stacked columns of customers by status over the period."""
    height, left, top, bottom = 260, 44, 10, 56
    plot_w, plot_h = width - left - 8, height - top - bottom
    top_total = max((sum(p[s] for s in STATUS_ORDER) for p in trend), default=0) or 1
    n = max(len(trend), 1)
    slot = plot_w / n
    bar_w = min(slot * 0.7, 46)
    label_every = -(-n // 14)
    body = []
    for i in range(5):  # y grid with counts
        value = top_total * i / 4
        y = top + plot_h - plot_h * i / 4
        body.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dddddd"/>')
        body.append(_text(left - 6, y + 4, f"{value:.0f}", font_size="11", fill=MUTED, text_anchor="end"))
    for i, point in enumerate(trend):
        x = left + slot * i + (slot - bar_w) / 2
        y = top + plot_h
        for status in ("green", "yellow", "red"):  # red on top, where the eye lands
            h = plot_h * point[status] / top_total
            y -= h
            if h > 0:
                body.append(_rect(x, y, bar_w, h, fill=STATUS_STYLE[status]["pattern"], stroke="#ffffff",
                                  stroke_width="0.8"))
        red = point["red"]
        if red and label_every == 1:
            body.append(_text(x + bar_w / 2, y - 3, f"{red}▲", font_size="10", fill=INK, text_anchor="middle"))
        day: dt.date = point["date"]
        if (n - 1 - i) % label_every:
            continue  # long periods: label every few weeks, counting back from the last
        body.append(_text(x + bar_w / 2, top + plot_h + 14, day.strftime("%d %b"), font_size="10",
                          fill=MUTED, text_anchor="middle"))
    body += status_legend(left, height - 10)
    desc = "; ".join(f"{p['date']}: " + ", ".join(f"{status_label(s)} {p[s]}" for s in STATUS_ORDER)
                     for p in trend)
    return _svg(width, height, body, "Customers by status, week by week", desc)


def status_mix_rows(rows: list[dict[str, Any]], width: int = 960, label_w: int = 200) -> Markup:
    """One 100 % bar per group (segment, manager) split by status, with the red count spelt out."""
    row_h, top = 26, 4
    height = top + row_h * len(rows) + 30
    plot_w = width - label_w - 130
    body = []
    for i, row in enumerate(rows):
        y = top + i * row_h
        total = row["customers"] or 1
        body.append(_text(label_w - 8, y + 16, _clip(row["label"], 28), font_size="12", fill=INK,
                          text_anchor="end"))
        x = float(label_w)
        for status in STATUS_ORDER:
            w = plot_w * row[status] / total
            if w > 0:
                body.append(_rect(x, y + 3, w, row_h - 8, fill=STATUS_STYLE[status]["pattern"],
                                  stroke="#ffffff", stroke_width="0.8"))
            x += w
        body.append(_text(label_w + plot_w + 8, y + 16,
                          f"▲{row['red']} ◆{row['yellow']} ●{row['green']}", font_size="11", fill=INK))
    body += status_legend(label_w, height - 8)
    desc = "; ".join(f"{r['label']}: red {r['red']}, yellow {r['yellow']}, green {r['green']}" for r in rows)
    return _svg(width, height, body, "Status mix by group", desc)


def paired_share_bars(rows: list[dict[str, Any]], title: str, width: int = 960,
                      label_w: int = 150) -> Markup:
    """Two bars per group: share with dialogue in the last 30 days (dark) and 90 days (light)."""
    row_h, top = 40, 4
    height = top + row_h * len(rows) + 34
    plot_w = width - label_w - 110
    body = []
    for pct in (0, 25, 50, 75, 100):
        x = label_w + plot_w * pct / 100
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{height - 30}" stroke="#e3e3e3"/>')
        body.append(_text(x, height - 18, f"{pct}%", font_size="10", fill=MUTED, text_anchor="middle"))
    for i, row in enumerate(rows):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + 21, _clip(row["label"], 20), font_size="12", fill=INK,
                          text_anchor="end"))
        for j, (key, fill, tag) in enumerate((("share30", BLUE, "30 d"), ("share90", SKY, "90 d"))):
            by = y + 3 + j * 16
            w = plot_w * row[key]
            body.append(_rect(label_w, by, w, 14, fill=fill))
            body.append(_text(label_w + w + 4, by + 11, f"{row[key]:.0%} ({tag})", font_size="10", fill=INK))
    body += legend([(BLUE, "two-way dialogue in last 30 days"), (SKY, "in last 90 days")],
                   label_w, height - 2)
    desc = "; ".join(f"{r['label']}: {r['share30']:.0%} in 30 days, {r['share90']:.0%} in 90 days"
                     for r in rows)
    return _svg(width, height + 4, body, title, desc)


def metric_bars(rows: list[dict[str, Any]], series: Sequence[tuple[str, str, str, float, str]], title: str,
                width: int = 960, label_w: int = 150) -> Markup:
    """Several bars per group, one per series (key, label, fill, full-scale value, format)."""
    bar_h, gap = 14, 2
    row_h = len(series) * (bar_h + gap) + 10
    top = 4
    height = top + row_h * len(rows) + 30
    plot_w = width - label_w - 260
    body = []
    for i, row in enumerate(rows):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + row_h / 2, _clip(row["label"], 20), font_size="12", fill=INK,
                          text_anchor="end"))
        for j, (key, label, fill, full, fmt) in enumerate(series):
            by = y + j * (bar_h + gap)
            value = row.get(key)
            if value is None:
                body.append(_text(label_w, by + 11, f"{label}: no data", font_size="10", fill=MUTED))
                continue
            w = plot_w * min(max(value / full, 0.0), 1.0)
            body.append(_rect(label_w, by, w, bar_h, fill=fill))
            body.append(_text(label_w + w + 4, by + 11, f"{label} {format(value, fmt)}", font_size="10",
                              fill=INK))
    body += legend([(fill, label) for _, label, fill, _, _ in series], label_w, height - 6)
    desc = "; ".join(f"{r['label']}: " + ", ".join(
        f"{label} {format(r[key], fmt) if r.get(key) is not None else 'no data'}"
        for key, label, _, _, fmt in series) for r in rows)
    return _svg(width, height, body, title, desc)


def count_bars(rows: list[dict[str, Any]], title: str, width: int = 360, label_w: int = 110) -> Markup:
    """Plain horizontal bars with the count printed: the customer mix (breadth)."""
    row_h = 24
    height = row_h * len(rows) + 6
    top_value = max((r["customers"] for r in rows), default=0) or 1
    plot_w = width - label_w - 50
    body = []
    for i, row in enumerate(rows):
        y = 3 + i * row_h
        w = plot_w * row["customers"] / top_value
        body.append(_text(label_w - 8, y + 14, _clip(row["label"], 16), font_size="12", fill=INK,
                          text_anchor="end"))
        body.append(_rect(label_w, y + 2, w, row_h - 8, fill=BLUE))
        body.append(_text(label_w + w + 4, y + 14, row["customers"], font_size="11", fill=INK))
    return _svg(width, height, body, title,
                "; ".join(f"{r['label']}: {r['customers']}" for r in rows))


# Shapes and colours per quadrant, so quadrants are told apart without colour.
_QUADRANT_MARKS = [("circle", BLUE), ("triangle", ORANGE), ("square", PURPLE), ("diamond", "#000000"),
                   ("cross", SKY)]


def _mark(shape: str, x: float, y: float, colour: str, title: str) -> str:
    tip = f"<title>{escape(title)}</title>"
    if shape == "circle":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" fill-opacity="0.75">{tip}</circle>'
    if shape == "square":
        return (f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{colour}" '
                f'fill-opacity="0.75">{tip}</rect>')
    if shape == "triangle":
        pts = f"{x:.1f},{y - 5:.1f} {x - 4.5:.1f},{y + 3.5:.1f} {x + 4.5:.1f},{y + 3.5:.1f}"
        return f'<polygon points="{pts}" fill="{colour}" fill-opacity="0.8">{tip}</polygon>'
    if shape == "diamond":
        pts = f"{x:.1f},{y - 5:.1f} {x + 4.5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 4.5:.1f},{y:.1f}"
        return f'<polygon points="{pts}" fill="{colour}" fill-opacity="0.7">{tip}</polygon>'
    return (f'<path d="M{x - 4:.1f} {y - 4:.1f} L{x + 4:.1f} {y + 4:.1f} M{x - 4:.1f} {y + 4:.1f} '
            f'L{x + 4:.1f} {y - 4:.1f}" stroke="{colour}" stroke-width="2">{tip}</path>')


def loyalty_scatter(points: list[dict[str, Any]], scale: float, strong_min: float | None = None,
                    width: int = 560) -> Markup:
    """Rational (x) against emotional (y) loyalty; the dashed lines mark where "strong" starts, and
    each quadrant is named by the label most of its customers carry in the mart."""
    size = width - 70
    left, top = 50, 12
    height = top + size + 84
    quadrant_names = sorted({str(p["quadrant"] or "unclassified") for p in points})
    marks = {q: _QUADRANT_MARKS[i % len(_QUADRANT_MARKS)] for i, q in enumerate(quadrant_names)}

    def px(v: float) -> float:
        return left + size * min(max(v / scale, 0.0), 1.0)

    def py(v: float) -> float:
        return top + size - size * min(max(v / scale, 0.0), 1.0)

    body = [_rect(left, top, size, size, fill="#fafafa", stroke="#bbbbbb")]
    mid = strong_min if strong_min is not None else scale / 2
    body.append(f'<line x1="{px(mid):.1f}" x2="{px(mid):.1f}" y1="{top}" y2="{top + size}" '
                f'stroke="#999" stroke-dasharray="4 3"/>')
    body.append(f'<line x1="{left}" x2="{left + size}" y1="{py(mid):.1f}" y2="{py(mid):.1f}" '
                f'stroke="#999" stroke-dasharray="4 3"/>')
    # Each corner is named after the quadrant most of its customers carry in the mart.
    corners = {(True, True): [], (False, True): [], (True, False): [], (False, False): []}
    for p in points:
        corners[(p["rational"] >= mid, p["emotional"] >= mid)].append(str(p["quadrant"] or "unclassified"))
    # Empty corners get the quadrant names fct_loyalty_matrix uses.
    fallback = {(True, True): "ambassador", (False, True): "emotionally loyal",
                (True, False): "rationally loyal", (False, False): "at risk"}
    for (high_r, high_e), names in corners.items():
        name = max(set(names), key=names.count) if names else fallback[(high_r, high_e)]
        x = left + size - 8 if high_r else left + 8
        y = top + 18 if high_e else top + size - 8
        body.append(_text(x, y, name.replace("_", " ").upper(), font_size="12", font_weight="700",
                          fill="#444444", text_anchor="end" if high_r else "start"))
    for p in points:
        shape, colour = marks[str(p["quadrant"] or "unclassified")]
        tip = f"{p['customer_name']}: rational {p['rational']:.2f}, emotional {p['emotional']:.2f}"
        body.append(_mark(shape, px(p["rational"]), py(p["emotional"]), colour, tip))
    for i in range(5):
        v = scale * i / 4
        label = f"{v:.0f}" if scale > 1 else f"{v:.2f}"
        body.append(_text(px(v), top + size + 14, label, font_size="10", fill=MUTED, text_anchor="middle"))
        body.append(_text(left - 6, py(v) + 4, label, font_size="10", fill=MUTED, text_anchor="end"))
    body.append(_text(left + size / 2, top + size + 32, "rational loyalty (promises kept) →",
                      font_size="12", fill=INK, text_anchor="middle"))
    body.append(f'<text x="14" y="{top + size / 2:.1f}" font-size="12" fill="{INK}" text-anchor="middle" '
                f'transform="rotate(-90 14 {top + size / 2:.1f})">emotional loyalty (feels for us) →</text>')
    lx, ly = float(left), height - 30
    for q in quadrant_names:
        shape, colour = marks[q]
        label = f"{q.replace('_', ' ')} ({sum(1 for p in points if str(p['quadrant'] or 'unclassified') == q)})"
        step = 30 + 6.5 * len(label)
        if lx + step > width and lx > left:  # wrap the legend instead of clipping it
            lx, ly = float(left), ly + 18
        body.append(_mark(shape, lx + 5, ly - 4, colour, q))
        body.append(_text(lx + 14, ly, label, font_size="11", fill=INK))
        lx += step
    return _svg(width, height, body, "Loyalty matrix: rational against emotional loyalty",
                f"{len(points)} customers; " + ", ".join(f"{q}: {sum(1 for p in points if str(p['quadrant'] or 'unclassified') == q)}"
                                                         for q in quadrant_names))


def plan_bullets(rows: list[dict[str, Any]], width: int = 960, label_w: int = 180,
                 flag_below: bool = True) -> Markup:
    """Calls and meetings as a share of plan per account manager; the 100 % line marks the plan.

    ``flag_below=False`` leaves out the "▼ below plan" marks: when every manager is below plan the
    report says so once, in words, instead of on every bar."""
    row_h, top = 40, 18
    height = top + row_h * len(rows) + 30
    plot_w = width - label_w - 120
    ceiling = max([1.5] + [r[k] for r in rows for k in ("calls_ratio", "meetings_ratio") if r[k]])
    ceiling = min(ceiling, 3.0)

    def px(ratio: float) -> float:
        return label_w + plot_w * min(ratio, ceiling) / ceiling

    body = [_text(px(1.0), 11, "plan", font_size="10", fill=INK, text_anchor="middle")]
    for i, row in enumerate(rows):
        y = top + i * row_h
        body.append(_text(label_w - 8, y + 21, _clip(row["name"], 24), font_size="12", fill=INK,
                          text_anchor="end"))
        for j, (key, actual, fill, tag) in enumerate((("calls_ratio", "calls", BLUE, "calls"),
                                                      ("meetings_ratio", "meetings", ORANGE, "meetings"))):
            by = y + 3 + j * 16
            ratio = row[key]
            if ratio is None:
                body.append(_text(label_w, by + 11, f"{row[actual]:,.0f} {tag} (no plan)", font_size="10",
                                  fill=INK))
                continue
            body.append(_rect(label_w, by, px(ratio) - label_w, 14, fill=fill))
            flag = "" if ratio >= 1 or not flag_below else " ▼ below plan"
            body.append(_text(px(ratio) + 4, by + 11, f"{ratio:.0%} of plan ({row[actual]:,.0f} {tag}){flag}",
                              font_size="10", fill=INK))
    body.append(f'<line x1="{px(1.0):.1f}" x2="{px(1.0):.1f}" y1="{top - 4}" y2="{height - 26}" '
                f'stroke="{INK}" stroke-width="2"/>')
    body += legend([(BLUE, "calls"), (ORANGE, "meetings")], label_w, height - 6)
    return _svg(width, height, body, "Account-manager activity against plan",
                "; ".join(f"{r['name']}: calls {r['calls']:,.0f}, meetings {r['meetings']:,.0f}" for r in rows))


def follow_up_bar(followed: int, not_followed: int, pending: int, width: int = 960, days: int = 14) -> Markup:
    """Alerts of the period split into followed by a dialogue, not followed, and not yet due."""
    total = followed + not_followed + pending or 1
    parts = [(f"followed by a dialogue within {days} days ✓", followed, "url(#pat-green)"),
             (f"no dialogue within {days} days ✗", not_followed, "url(#pat-red)"),
             (f"younger than {days} days, no dialogue yet …", pending, "url(#pat-pending)")]
    body, x = [], 0.0
    for label, n, fill in parts:
        w = width * n / total
        if n:
            body.append(_rect(x, 6, w, 36, fill=fill, stroke="#ffffff"))
            if w > 40:
                body.append(_rect(x + 4, 13, 8 * len(str(n)) + 8, 22, fill="#ffffff", fill_opacity="0.9", rx="3"))
                body.append(_text(x + 8, 29, n, font_size="13", font_weight="600", fill=INK))
        x += w
    body += legend([(fill, f"{label}: {n}") for label, n, fill in parts], 0, 66, line_h=20)
    return _svg(width, 116, body, "Alerts raised and their follow-up",
                "; ".join(f"{label}: {n}" for label, n, _ in parts))


def _clip(value: Any, limit: int) -> str:
    text = str(value if value is not None else "—")
    return text if len(text) <= limit else text[: limit - 1] + "…"
