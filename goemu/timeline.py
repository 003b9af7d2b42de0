"""A picture of a trace: an SVG timeline with one track per guest thread (labelled with its M),
the traced calls as spans (with --ret) or ticks, and the run queues underneath.

The time axis is guest instructions, as in the Chrome export, so the picture of a
--deterministic run is reproducible.
"""
from __future__ import annotations

import hashlib
from html import escape

WIDTH = 1400
LABEL_W = 150
ROW_H = 26
TOP = 48
COUNTER_H = 90


PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
           "#ff9da7", "#9c755f", "#bab0ac"]
_assigned: dict[str, str] = {}


def _color(name: str) -> str:
    """Distinct colours for the first names seen, then stable hashed hues."""
    if name not in _assigned:
        if len(_assigned) < len(PALETTE):
            _assigned[name] = PALETTE[len(_assigned)]
        else:
            h = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) % 360
            _assigned[name] = f"hsl({h},62%,52%)"
    return _assigned[name]


def render_svg(events: list[dict], title: str, with_spans: bool) -> str:
    calls = [e for e in events if e.get("event") is None]
    rets = {e["call_seq"]: e for e in events if e.get("event") == "return"}
    if not calls:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="60"><text x="10" y="30" '
                f'font-family="sans-serif" font-size="14">{escape(title)}: no events</text></svg>\n')
    t0 = min(e["icount"] for e in calls)
    t1 = max([e["icount"] for e in calls] + [r["icount"] for r in rets.values()]) + 1
    span = max(t1 - t0, 1)
    plot_w = WIDTH - LABEL_W - 60

    def x(ic: int) -> float:
        return LABEL_W + (ic - t0) * plot_w / span

    tids = sorted({e["tid"] for e in calls})
    m_of = {}
    for e in calls:
        if e.get("m") is not None:
            m_of.setdefault(e["tid"], e["m"])
    row = {tid: i for i, tid in enumerate(tids)}
    sched = [e for e in calls if e.get("sched")]
    height = TOP + ROW_H * len(tids) + 40 + (COUNTER_H + 30 if sched else 0) + 30
    funcs = sorted({e["func"] for e in calls})
    _assigned.clear()
    for f in funcs:
        _color(f)
    height += 18 * ((len(funcs) + 3) // 4)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
           f'<text x="10" y="40" fill="#555">time axis: guest instructions {t0:,} \u2013 {t1:,}</text>']
    for tid in tids:
        y = TOP + row[tid] * ROW_H
        out.append(f'<rect x="{LABEL_W}" y="{y + 2}" width="{plot_w}" height="{ROW_H - 4}" fill="#f3f3f3"/>')
        label = f"M{m_of.get(tid, '?')}  tid {tid}"
        out.append(f'<text x="10" y="{y + ROW_H / 2 + 4}">{escape(label)}</text>')
    depth_stack: dict[int, list[int]] = {}
    for e in calls:
        y = TOP + row[e["tid"]] * ROW_H
        ret = rets.get(e["seq"])
        # nested spans are drawn inset, so a call inside another stays visible
        stack = depth_stack.setdefault(e["tid"], [])
        while stack and stack[-1] <= e["icount"]:
            stack.pop()
        depth = min(len(stack), 3)
        if with_spans and ret is not None:
            stack.append(ret["icount"])
        y += depth * 3
        tip = (f"{e['func']} \u2190 {e['caller']}  M{e['m']} P{e['p']} G{e['goid']}  "
               f"icount {e['icount']:,}" + (f", {ret['dur_icount']:,} instructions" if ret else ""))
        if with_spans and ret is not None:
            w = max(x(ret["icount"]) - x(e["icount"]), 1.0)
            out.append(f'<rect x="{x(e["icount"]):.1f}" y="{y + 4}" width="{w:.1f}" '
                       f'height="{ROW_H - 8 - 2 * depth * 3}" fill="{_color(e["func"])}" opacity="0.9" '
                       f'stroke="white" stroke-width="0.5"><title>{escape(tip)}</title></rect>')
        else:
            out.append(f'<rect x="{x(e["icount"]) - 1:.1f}" y="{y + 4}" width="2.5" height="{ROW_H - 8}" '
                       f'fill="{_color(e["func"])}"><title>{escape(tip)}</title></rect>')
    y = TOP + ROW_H * len(tids) + 16
    for i in range(6):   # axis ticks
        ic = t0 + span * i // 5
        out.append(f'<line x1="{x(ic):.1f}" y1="{TOP}" x2="{x(ic):.1f}" y2="{y - 8}" stroke="#ccc"/>')
        out.append(f'<text x="{x(ic):.1f}" y="{y + 4}" text-anchor="middle" fill="#555">{ic:,}</text>')
    y += 24
    if sched:
        top = y
        out.append(f'<text x="10" y="{top + 14}">run queues</text>')
        series: dict[str, list[tuple[int, int]]] = {}
        for e in sched:
            s = e["sched"]
            series.setdefault("global", []).append((e["icount"], s.get("runqsize", 0)))
            for p in s.get("ps", []):
                series.setdefault(f"P{p['id']}", []).append((e["icount"], p["runq"] + (1 if p["runnext"] else 0)))
        peak = max(max(v for _, v in pts) for pts in series.values()) or 1
        for name, pts in sorted(series.items()):
            path = []
            for i, (ic, v) in enumerate(pts):     # a step chart: values hold until the next event
                py = top + COUNTER_H - v * (COUNTER_H - 10) / peak
                path.append(f"M{x(ic):.1f},{py:.1f}" if i == 0 else f"H{x(ic):.1f} V{py:.1f}")
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{_color(name)}" stroke-width="1.5">'
                       f'<title>{escape(name)} (runq + runnext)</title></path>')
        for i, name in enumerate(sorted(series)):
            lx = LABEL_W + i * 110
            out.append(f'<rect x="{lx}" y="{top + COUNTER_H + 6}" width="12" height="3" fill="{_color(name)}"/>'
                       f'<text x="{lx + 16}" y="{top + COUNTER_H + 12}" fill="#555">{escape(name)}</text>')
        out.append(f'<text x="{LABEL_W + len(series) * 110}" y="{top + COUNTER_H + 12}" fill="#555">'
                   f'runnable goroutines queued (peak {peak})</text>')
        y = top + COUNTER_H + 30
    for i, f in enumerate(funcs):
        cx = 10 + (i % 4) * 340
        cy = y + (i // 4) * 18
        out.append(f'<rect x="{cx}" y="{cy}" width="12" height="12" fill="{_color(f)}"/>'
                   f'<text x="{cx + 18}" y="{cy + 11}">{escape(f)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
