"""Erasure drops a customer's JSON Lines records whole, whatever characters their strings hold."""

from __future__ import annotations

import json

from loyalty_core.settings import load_settings
from loyalty_monitor import erasure
from streaming import samples
from streaming.landing import land_jsonl_offline


def test_a_record_whose_note_holds_a_line_separator_is_dropped_whole(tmp_path):
    """The generator writes notes as they are (``ensure_ascii=False``): a U+2028 or U+0085 in a
    note stays in the line. The scrubber split JSON Lines files at those characters too: of an
    erased customer's record it dropped the half that named them and kept the other half, a broken
    line holding the rest of their note. Lines end at "\\n" only: the record goes whole, the other
    customer's record (with its own separators) stays as it was."""
    data_dir = tmp_path / "data"
    gen = data_dir / "generated"
    gen.mkdir(parents=True)
    settings = load_settings(data_dir=data_dir, landing_url="", warehouse_path="")
    gone, kept = "C-GONE", "C-KEPT"
    (gen / "customers.jsonl").write_text("".join(
        json.dumps(samples.customer(i, customer_id=cid)) + "\n" for i, cid in enumerate((gone, kept))))
    touchpoints = [samples.touchpoint(0, customer_id=gone, note="call back\u2028about the renewal 7f3a"),
                   samples.touchpoint(1, customer_id=kept, note="first\x85second\u2029third"),
                   samples.touchpoint(2, customer_id=gone, note="plain")]
    lines = [json.dumps(t, ensure_ascii=False) + "\n" for t in touchpoints]
    path = gen / "touchpoints.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    land_jsonl_offline(settings, path, gen / "customers.jsonl")

    report = erasure.erase_customers(settings, [gone], requested_by="dpo@example.com")

    assert path.read_text(encoding="utf-8") == lines[1]  # no half of the first record left behind
    assert [json.loads(line)["customer_id"] for line in (gen / "customers.jsonl").read_text().splitlines()] == [kept]
    assert [e["removed"]["json_lines_dropped"] for e in report.erasures] == [3]  # 2 touchpoints, 1 customer
