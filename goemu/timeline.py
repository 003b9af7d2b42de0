"""A picture of a trace that a person can read: an SVG (or an HTML page with zoom) with

* a time axis on the guest's clock (the virtual clock with --deterministic: 1 instruction =
  1 ns, idle time skipped, so a 20 ms sleep is 20 ms wide), in ms/µs from the first event;
* one track per M (guest thread): calls made on g0 (the scheduler, sysmon, newstack...) as
  spans or ticks, over a light band showing which goroutine the M serves (m.curg);
* one lane per goroutine: the calls it made (a span lasts until its return, even when the
  goroutine came back on another M: gopark's span is the time it was parked), g0 work done on
  its behalf (curg), and a marker each time runtime.execute chose it;
* the run queues (global and per P, runq + runnext) with a y-axis;
* a legend, and a window: --from/--to in ms, +ms, or a function's first event.

Dense traces do not become walls of ticks: calls closer than a pixel are merged into one
mark whose tooltip counts them.
"""
from __future__ import annotations

import hashlib
import json
import math
from html import escape

WIDTH = 1400
LABEL_W = 170
RIGHT = 30
ROW_H = 22
MAX_G_LANES = 48

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
           "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"]


class _Colors:
    def __init__(self, names):
        self.map = {}
        for n in names:
            self.get(n)

    def get(self, name: str) -> str:
        if name not in self.map:
            if len(self.map) < len(PALETTE):
                self.map[name] = PALETTE[len(self.map)]
            else:
                h = int(hashlib.sha1(name.encode()).hexdigest()[:6], 16) % 360
                self.map[name] = f"hsl({h},62%,50%)"
        return self.map[name]


def _g_hue(goid: int) -> str:
    return f"hsl({(goid * 137) % 360},55%,85%)"


def nice_step(span_ns: float, target: int = 10) -> float:
    raw = max(span_ns / target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * mag >= raw:
            return m * mag
    return 10 * mag


def fmt_ns(ns: float, step: float) -> str:
    if step >= 1e6:
        digits = 0 if step >= 1e6 and (step / 1e6).is_integer() else 1
        return f"{ns / 1e6:.{digits}f} ms"
    if step >= 1e3:
        return f"{ns / 1e3:.{0 if (step / 1e3).is_integer() else 1}f} µs"
    return f"{ns:.0f} ns"


def _when(spec, calls: list[dict], t0: int, after: int | None) -> int | None:
    """A window bound: ms from the first event, +ms after `after`, or a function's first event."""
    if spec is None:
        return None
    s = str(spec)
    try:
        if s.startswith("+"):
            return (after if after is not None else t0) + int(float(s[1:]) * 1e6)
        return t0 + int(float(s) * 1e6)
    except ValueError:
        pass
    for e in calls:
        if e["func"] == s and (after is None or e["ns"] >= after):
            return e["ns"]
    raise ValueError(f"--from/--to: no traced call of {s}" + (" after the window start" if after else ""))


def render_svg(events: list[dict], title: str, with_spans: bool, window=(None, None),
               html_ids: bool = False) -> str:
    picks = [e for e in events if e.get("event") == "picked" and "ns" in e and e.get("picked")]
    evs = [e for e in events if e.get("event") in (None, "return") and "ns" in e]
    calls = [e for e in evs if e.get("event") is None]
    if not calls:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="600" height="60"><text x="10" y="30" '
                f'font-family="sans-serif" font-size="14">{escape(title)}: no events</text></svg>\n')
    rets = {e["call_seq"]: e for e in evs if e.get("event") == "return"}
    first = min(e["ns"] for e in calls)
    last = max(e["ns"] for e in evs)
    lo = _when(window[0], calls, first, None)
    hi = _when(window[1], calls, first, lo)
    t0 = lo if lo is not None else first
    t1 = hi if hi is not None else last + max((last - first) // 100, 1)
    if t1 <= t0:
        t1 = t0 + 1
    plot_w = WIDTH - LABEL_W - RIGHT
    span = t1 - t0

    def x(ns: float) -> float:
        return LABEL_W + (min(max(ns, t0), t1) - t0) * plot_w / span

    def inside(a: int, b: int) -> bool:
        return b >= t0 and a <= t1

    funcs = sorted({e["func"] for e in calls})
    colors = _Colors(funcs)
    counts = {f: 0 for f in funcs}

    # ---- lanes ---------------------------------------------------------------------------
    m_of: dict[int, int | None] = {}
    for e in evs:
        if e.get("m") is not None:
            m_of.setdefault(e["tid"], e["m"])
    tids = sorted({e["tid"] for e in evs}, key=lambda t: (m_of.get(t) is None, m_of.get(t) or 0, t))
    gcount: dict[int, int] = {}       # goroutines with something to draw in the window
    for e in calls:
        r = rets.get(e["seq"])
        if not inside(e["ns"], r["ns"] if r is not None and with_spans else e["ns"]):
            continue
        for g in (e.get("goid"), e.get("curg")):
            if g:
                gcount[g] = gcount.get(g, 0) + 1
        for a in e.get("args", []):
            if a.get("type") == "*runtime.g" and a["value"].startswith("G"):
                g = int(a["value"][1:])
                gcount[g] = gcount.get(g, 0) + 1
    for e in picks:
        if t0 <= e["ns"] <= t1:
            gcount[e["picked"]] = gcount.get(e["picked"], 0) + 1
    goids = sorted(sorted(gcount, key=lambda g: -gcount[g])[:MAX_G_LANES])
    hidden_g = len(gcount) - len(goids)

    sched = [e for e in calls if e.get("sched") and t0 <= e["ns"] <= t1]
    y = 58
    axis_y = y
    y += 26
    m_top = y + 18
    g_top = m_top + ROW_H * len(tids) + 30
    q_top = g_top + (ROW_H * len(goids) + 30 if goids else 0) + (16 if hidden_g else 0)
    q_h = 110 if sched else 0
    legend_top = q_top + (q_h + 50 if sched else 0)
    legend_rows = (len(funcs) + 3) // 4 + 2
    height = legend_top + 18 * legend_rows + 20

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="sans-serif" font-size="12"'
           + (f' data-t0="{t0}" data-t1="{t1}" data-x0="{LABEL_W}" data-w="{plot_w}"' if html_ids else "")
           + '>',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
           f'<text x="10" y="42" fill="#555">time: the guest clock from the first event '
           f'(virtual with --deterministic: 1 instruction = 1 ns, idle time skipped); window '
           f'{fmt_ns(t0 - first, 1e3)} \u2013 {fmt_ns(t1 - first, 1e3)} of '
           f'{fmt_ns(last - first, 1e3)}; {len(calls)} calls</text>']

    # ---- time axis (grid lines run through every section) ------------------------------------
    step = nice_step(span)
    grid_bottom = q_top + q_h if sched else q_top - 10
    out.append(f'<g id="axis">' if html_ids else "<g>")
    k = math.ceil((t0 - first) / step)
    while first + k * step <= t1:
        tx = x(first + k * step)
        out.append(f'<line x1="{tx:.1f}" y1="{axis_y + 8}" x2="{tx:.1f}" y2="{grid_bottom}" stroke="#e4e4e4"/>'
                   f'<text x="{tx:.1f}" y="{axis_y + 4}" text-anchor="middle" fill="#444">'
                   f'{fmt_ns(k * step, step)}</text>')
        k += 1
    out.append("</g>")
    out.append(f'<line x1="{LABEL_W}" y1="{axis_y + 8}" x2="{LABEL_W + plot_w}" y2="{axis_y + 8}" stroke="#888"/>')
    out.append(f'<clipPath id="clip"><rect x="{LABEL_W}" y="0" width="{plot_w}" height="{height}"/></clipPath>'
               f'<g clip-path="url(#clip)"><g id="plot">')
    fixed: list[str] = []      # labels: outside the plot group, so zooming does not stretch them

    def section(top: int, text: str) -> None:
        fixed.append(f'<text x="10" y="{top - 6}" font-weight="bold" fill="#333">{escape(text)}</text>')

    def band(yy: int, label: str, sub: str = "") -> None:
        out.append(f'<rect x="{LABEL_W}" y="{yy + 1}" width="{plot_w}" height="{ROW_H - 2}" fill="#f5f5f5"/>')
        fixed.append(f'<text x="10" y="{yy + ROW_H / 2 + 4}">{escape(label)}'
                   + (f'<tspan fill="#888"> {escape(sub)}</tspan>' if sub else "") + '</text>')

    marks: dict[tuple, list] = {}          # merged ticks: (lane y, func, px) -> [events]

    def tick(yy: int, e: dict, h: int, dy: int = 0) -> None:
        if not t0 <= e["ns"] <= t1:
            return
        px = int(x(e["ns"]) // 2)
        marks.setdefault((yy + dy, h, e["func"], px), []).append(e)

    def tip(e: dict, ret: dict | None) -> str:
        args = ", ".join(f"{a['name']}={a['value']}" for a in e.get("args", []))
        s = (f"{e['func']}({args}) \u2190 {e.get('caller', '')}  M{e['m']} P{e['p'] if e['p'] is not None else '-'} "
             f"G{e['goid']} curg={e.get('curg')}  t={fmt_ns(e['ns'] - first, 1e3)}")
        if ret is not None:
            res = ", ".join(f"{a['name']}={a['value']}" for a in ret.get("results", []))
            s += f"; returned{' (' + res + ')' if res else ''} on M{ret['m']} after {fmt_ns(ret['ns'] - e['ns'], 1)}"
        return s

    def bar(yy: int, e: dict, ret: dict, depth: int) -> None:
        if not inside(e["ns"], ret["ns"]):
            return
        x0, x1 = x(e["ns"]), x(ret["ns"])
        inset = min(depth, 3) * 3
        out.append(f'<rect x="{x0:.1f}" y="{yy + 3 + inset}" width="{max(x1 - x0, 1.5):.1f}" '
                   f'height="{ROW_H - 6 - 2 * inset}" fill="{colors.get(e["func"])}" opacity="0.85" '
                   f'stroke="white" stroke-width="0.6">'
                   f'<title>{escape(tip(e, ret))}</title></rect>')

    # ---- M tracks ---------------------------------------------------------------------------
    section(m_top, "Ms (OS threads): work on g0 (scheduler, sysmon, stack growth...); shade = m.curg")
    row_of = {tid: m_top + i * ROW_H for i, tid in enumerate(tids)}
    for tid in tids:
        m = m_of.get(tid)
        band(row_of[tid], f"M{m if m is not None else '?'}", f"tid {tid}")
    by_tid: dict[int, list[dict]] = {}
    for e in evs:
        by_tid.setdefault(e["tid"], []).append(e)
    for tid, es in by_tid.items():      # which goroutine the M serves, between its events
        yy = row_of[tid]
        for a, b in zip(es, es[1:] + [None]):
            g = a.get("curg")
            end = b["ns"] if b is not None else last
            if g and inside(a["ns"], end):
                out.append(f'<rect x="{x(a["ns"]):.1f}" y="{yy + ROW_H - 6}" width="{max(x(end) - x(a["ns"]), 0.5):.1f}" '
                           f'height="4" fill="{_g_hue(g)}"><title>M{a["m"]} serves G{g}</title></rect>')
    # ---- goroutine lanes -------------------------------------------------------------------
    if goids:
        section(g_top, "goroutines: their calls (spans last until the return, on any M); "
                       "\u25aa = named by a g0 call (a *g argument: " + (", ".join(sorted(
                           {e['func'].removeprefix("runtime.") for e in calls if not e.get('goid')
                            and any(a.get('type') == '*runtime.g' for a in e.get('args', []))}
                           | ({"schedule picked"} if picks else set()))) or "-") + ")")
        for i, g in enumerate(goids):
            band(g_top + i * ROW_H, f"G{g}", "")
        if hidden_g:
            fixed.append(f'<text x="10" y="{g_top + ROW_H * len(goids) + 14}" fill="#888">'
                       f'{hidden_g} more goroutines not drawn (the {MAX_G_LANES} busiest are)</text>')
    for e in picks:     # schedule() chose this goroutine (reported at execute's entry)
        if e["picked"] in goids and t0 <= e["ns"] <= t1:
            gy = g_top + goids.index(e["picked"]) * ROW_H
            out.append(f'<rect class="mk" data-w="4" x="{x(e["ns"]) - 2:.1f}" y="{gy + 1}" width="4" height="5" '
                       f'fill="#222"><title>schedule picked G{e["picked"]} on M{e["m"]} P{e["p"]} at '
                       f'{fmt_ns(e["ns"] - first, 1e3)}</title></rect>')
    depth: dict[object, list[int]] = {}
    for e in calls:
        counts[e["func"]] += 1
        ret = rets.get(e["seq"])
        on_g = bool(e.get("goid"))
        if on_g and e["goid"] in goids:
            yy, key = g_top + goids.index(e["goid"]) * ROW_H, ("g", e["goid"])
        elif on_g:
            continue
        else:
            yy, key = row_of[e["tid"]], ("m", e["tid"])
        stack = depth.setdefault(key, [])
        while stack and stack[-1] <= e["ns"]:
            stack.pop()
        if with_spans and ret is not None and (on_g or ret["tid"] == e["tid"]):
            bar(yy, e, ret, len(stack))
            stack.append(ret["ns"])
        else:
            tick(yy, e, ROW_H - 8)
        # g0 work on a goroutine's behalf, and the goroutine execute() chose, in its lane
        if not on_g:
            if e.get("curg") in goids:
                tick(g_top + goids.index(e["curg"]) * ROW_H, e, 6, ROW_H - 10)
            for a in e.get("args", []):
                if a.get("type") == "*runtime.g" and a["value"][1:].isdigit() and int(a["value"][1:]) in goids:
                    gy = g_top + goids.index(int(a["value"][1:])) * ROW_H
                    if t0 <= e["ns"] <= t1:
                        gx = x(e["ns"])
                        out.append(f'<rect class="mk" data-w="4" x="{gx - 2:.1f}" y="{gy + 1}" width="4" height="5" '
                                   f'fill="#222"><title>{escape(tip(e, None))}</title></rect>')

    for (yy, h, func, px), es in sorted(marks.items(), key=lambda kv: kv[0][3]):
        n = len(es)
        body = escape(tip(es[0], rets.get(es[0]["seq"]))) + (f" (+{n - 1} more here)" if n > 1 else "")
        out.append(f'<rect class="mk" data-w="{2.5 if n == 1 else 3}" x="{2 * px - 0.5:.1f}" '
                   f'y="{yy + (ROW_H - h) / 2 if h > 6 else yy}" width="{2.5 if n == 1 else 3}" '
                   f'height="{h}" fill="{colors.get(func)}"><title>{body}</title></rect>')

    # ---- run queues ---------------------------------------------------------------------------
    if sched:
        section(q_top, "run queues: runnable goroutines queued (global runq; each P's runq + runnext)")
        series: dict[str, list[tuple[int, int]]] = {}
        for e in sched:
            s = e["sched"]
            series.setdefault("global", []).append((e["ns"], s.get("runqsize", 0)))
            for p in s.get("ps", []):
                series.setdefault(f"P{p['id']}", []).append((e["ns"], p["runq"] + (1 if p["runnext"] else 0)))
        peak = max(max(v for _, v in pts) for pts in series.values())
        ymax = max(peak, 1)
        qcol = _Colors(sorted(series))

        def qy(v: float) -> float:
            return q_top + q_h - v * (q_h - 8) / ymax

        fixed.append(f'<line x1="{LABEL_W}" y1="{q_top}" x2="{LABEL_W}" y2="{q_top + q_h}" stroke="#888"/>')
        ystep = max(1, int(nice_step(ymax, 4)))
        for v in range(0, ymax + 1, ystep):
            out.append(f'<line x1="{LABEL_W}" y1="{qy(v):.1f}" x2="{LABEL_W + plot_w}" y2="{qy(v):.1f}" stroke="#eee"/>')
            fixed.append(f'<line x1="{LABEL_W - 4}" y1="{qy(v):.1f}" x2="{LABEL_W}" y2="{qy(v):.1f}" stroke="#888"/>'
                         f'<text x="{LABEL_W - 7}" y="{qy(v) + 4:.1f}" text-anchor="end" fill="#444">{v}</text>')
        fixed.append(f'<text x="{LABEL_W - 40}" y="{q_top + q_h / 2}" text-anchor="end" fill="#444">goroutines</text>')
        for name, pts in sorted(series.items()):
            path = []
            for i, (ns, v) in enumerate(pts):     # a step chart: values hold until the next event
                path.append(f"M{x(ns):.1f},{qy(v):.1f}" if i == 0 else f"H{x(ns):.1f} V{qy(v):.1f}")
            path.append(f"H{x(t1):.1f}")
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{qcol.get(name)}" stroke-width="1.6">'
                       f'<title>{escape(name)}</title></path>')
        for i, name in enumerate(sorted(series)):
            lx = LABEL_W + i * 90
            fixed.append(f'<rect x="{lx}" y="{q_top + q_h + 14}" width="14" height="3" fill="{qcol.get(name)}"/>'
                         f'<text x="{lx + 18}" y="{q_top + q_h + 19}" fill="#444">{escape(name)}</text>')
    out.append("</g></g>")
    out += fixed

    # ---- legend -----------------------------------------------------------------------------
    out.append(f'<text x="10" y="{legend_top}" font-weight="bold" fill="#333">functions '
               f'(span: call to return with --ret; thin mark: a call, merged when closer than 2 px)</text>')
    for i, f in enumerate(funcs):
        cx = 10 + (i % 4) * 345
        cy = legend_top + 10 + (i // 4) * 18
        out.append(f'<rect x="{cx}" y="{cy}" width="12" height="12" fill="{colors.get(f)}"/>'
                   f'<text x="{cx + 18}" y="{cy + 11}">{escape(f)} ({counts[f]})</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


_HTML = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 8px; }}
#bar {{ margin-bottom: 6px; }} #bar button {{ margin-right: 4px; }}
#wrap {{ overflow-x: auto; border: 1px solid #ddd; }}
</style></head><body>
<div id="bar"><button id="in">zoom in (+)</button><button id="out">zoom out (-)</button>
<button id="reset">reset</button> <span id="info" style="color:#555">wheel over the picture: zoom
around the pointer; drag: pan</span></div>
<div id="wrap">{svg}</div>
<script>
const svg = document.querySelector('#wrap svg');
const plot = svg.querySelector('#plot'), axis = svg.querySelector('#axis');
const T0 = +svg.dataset.t0, T1 = +svg.dataset.t1, X0 = +svg.dataset.x0, W = +svg.dataset.w;
const FIRST = {first};
let lo = T0, hi = T1;
const ns = 'http://www.w3.org/2000/svg';
const axisBottom = {grid_bottom};
function step(span) {{ const raw = Math.max(span / 10, 1), mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag; return 10 * mag; }}
function fmt(v, st) {{ if (st >= 1e6) return (v / 1e6).toFixed(Number.isInteger(st / 1e6) ? 0 : 1) + ' ms';
  if (st >= 1e3) return (v / 1e3).toFixed(Number.isInteger(st / 1e3) ? 0 : 1) + ' \u00b5s'; return v.toFixed(0) + ' ns'; }}
function draw() {{
  const k = (T1 - T0) / (hi - lo), tx = X0 - (lo - T0) * W / (hi - lo) * 1;
  plot.setAttribute('transform', `translate(${{X0 - k * X0 + (T0 - lo) * W / (hi - lo)}},0) scale(${{k}},1)`);
  plot.querySelectorAll('rect,path,line').forEach(el => el.setAttribute('vector-effect', 'non-scaling-stroke'));
  plot.querySelectorAll('.mk').forEach(el => el.setAttribute('width', el.dataset.w / k));  // marks keep their size
  while (axis.firstChild) axis.removeChild(axis.firstChild);
  const st = step(hi - lo);
  for (let i = Math.ceil((lo - FIRST) / st); FIRST + i * st <= hi; i++) {{
    const x = X0 + (FIRST + i * st - lo) * W / (hi - lo);
    const l = document.createElementNS(ns, 'line');
    Object.entries({{x1: x, x2: x, y1: {axis_y} + 8, y2: axisBottom, stroke: '#e4e4e4'}}).forEach(([a, v]) => l.setAttribute(a, v));
    const t = document.createElementNS(ns, 'text');
    Object.entries({{x: x, y: {axis_y} + 4, 'text-anchor': 'middle', fill: '#444'}}).forEach(([a, v]) => t.setAttribute(a, v));
    t.textContent = fmt(i * st, st); axis.appendChild(l); axis.appendChild(t);
  }}
}}
function zoom(f, at) {{ const c = lo + (at - X0) / W * (hi - lo); lo = c - (c - lo) * f; hi = c + (hi - c) * f;
  lo = Math.max(lo, T0); hi = Math.min(hi, T1); if (hi - lo < 10) hi = lo + 10; draw(); }}
document.getElementById('in').onclick = () => zoom(0.5, X0 + W / 2);
document.getElementById('out').onclick = () => zoom(2, X0 + W / 2);
document.getElementById('reset').onclick = () => {{ lo = T0; hi = T1; draw(); }};
svg.addEventListener('wheel', ev => {{ ev.preventDefault();
  const r = svg.getBoundingClientRect(); zoom(ev.deltaY < 0 ? 0.7 : 1 / 0.7, ev.clientX - r.left); }});
// a window in the address: page.html#from=1.5&to=2.5 (ms from the first event)
const h = new URLSearchParams(location.hash.slice(1));
if (h.has('from') || h.has('to')) {{ lo = Math.max(T0, FIRST + 1e6 * +(h.get('from') || 0));
  hi = Math.min(T1, h.has('to') ? FIRST + 1e6 * +h.get('to') : T1); if (hi <= lo) hi = lo + 10; draw(); }}
let drag = null;
svg.addEventListener('mousedown', ev => drag = ev.clientX);
window.addEventListener('mouseup', () => drag = null);
window.addEventListener('mousemove', ev => {{ if (drag === null) return; const d = (ev.clientX - drag) / W * (hi - lo);
  drag = ev.clientX; if (lo - d < T0 || hi - d > T1) return; lo -= d; hi -= d; draw(); }});
</script></body></html>
"""


def render_html(events: list[dict], title: str, with_spans: bool, window=(None, None)) -> str:
    """The same picture in a page that zooms (wheel, buttons) and pans (drag) along time."""
    svg = render_svg(events, title, with_spans, window, html_ids=True)
    calls = [e for e in events if e.get("event") is None and "ns" in e]
    first = min((e["ns"] for e in calls), default=0)
    grid_bottom = 0
    for line in svg.splitlines():          # the grid's extent, as the static axis drew it
        if line.startswith("<line") and 'stroke="#e4e4e4"' in line:
            grid_bottom = float(line.split('y2="')[1].split('"')[0])
            break
    return _HTML.format(title=escape(title), svg=svg, first=json.dumps(first),
                        grid_bottom=grid_bottom, axis_y=58)
