"""A campaign's report: one self-contained HTML page a person opens to see every video, what it cost and how long
each provider job took against its model's profile.

Inline CSS and inline SVG charts, no script and nothing fetched from the network; files are linked through
`link_for(path)` (relative paths beside the report by default, presigned URLs when the clip store gives them).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, select_autoescape

from video_pipeline.atomic import private_sibling
from video_pipeline.planning.catalog import Catalog
from video_pipeline.tables import cell, values

REPORT_NAME = "report.html"
SPEECH = "narration (speech)"   # the cost-by-model row for text to speech, which no video model spent
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777", "#65a30d"]

LinkFor = Callable[[Path], str]


def relative_links(report_dir: Path) -> LinkFor:
    """Links relative to the report's directory, so the page and its files can be moved or zipped together."""
    base = Path(report_dir).resolve()

    def link_for(path: Path) -> str:
        return quote(Path(os.path.relpath(Path(path).resolve(), base)).as_posix())

    return link_for


_value = cell


@dataclass
class SegmentLine:
    video_id: str
    index: int
    state: str
    model: str
    planned_model: str
    reason: str
    seconds: float
    latency_seconds: float | None      # provider time (ledger), on the catalog profile's scale
    p50: float | None
    p95: float | None
    attempts: int
    fallbacks: str
    est_cost_usd: float
    cost_usd: float
    error: str | None
    reused: bool
    resumed: bool

    @property
    def verdict(self) -> str:
        if self.latency_seconds is None or self.p50 is None:
            return ""
        if self.latency_seconds <= self.p50:
            return "at or under p50"
        return "within p95" if self.latency_seconds <= self.p95 else "slower than p95"

    @property
    def verdict_class(self) -> str:
        return {"at or under p50": "good", "within p95": "ok", "slower than p95": "bad"}.get(self.verdict, "")


@dataclass
class VideoSection:
    video_id: str
    state: str
    error: str | None
    duration_seconds: float | None
    target_seconds: float | None
    cost_usd: float
    models: str
    loudness_lufs: float | None
    video_link: str | None
    poster_link: str | None
    contact_link: str | None
    subtitles_link: str | None
    segments: list[SegmentLine] = field(default_factory=list)
    credentials: dict | None = None          # the outputs table's Content Credentials record
    credentials_link: str | None = None      # the <video>.c2pa.json sidecar


def segment_lines(plans: pd.DataFrame, segments: pd.DataFrame, catalog: Catalog,
                  provider_latency: dict[str, float]) -> list[SegmentLine]:
    """One line per planned segment: the plan's reason beside what the engine did (model, attempts, cost)."""
    plan_rows = {(r["video_id"], int(r["segment_index"])): r for r in plans.to_dict("records")}
    lines = []
    for o in segments.to_dict("records"):
        o = {k: _value(v) for k, v in o.items()}
        plan = plan_rows.get((o["video_id"], int(o["segment_index"])), {})
        model = o.get("model") or plan.get("model") or ""
        spec = catalog.models.get(model)
        lines.append(SegmentLine(
            video_id=o["video_id"], index=int(o["segment_index"]), state=o.get("state") or "", model=model,
            planned_model=o.get("planned_model") or plan.get("model") or model, reason=plan.get("reason") or "",
            seconds=float(o.get("seconds") or plan.get("seconds") or 0),
            latency_seconds=provider_latency.get(o.get("job_key") or ""),
            p50=spec.latency.p50_seconds if spec else None, p95=spec.latency.p95_seconds if spec else None,
            attempts=int(o.get("attempts") or 0), fallbacks=" | ".join(values(o.get("fallbacks_taken"))),
            est_cost_usd=float(_value(plan.get("est_cost_usd")) or 0.0), cost_usd=float(o.get("cost_usd") or 0.0),
            error=o.get("error"), reused=bool(o.get("reused")), resumed=bool(o.get("resumed")),
        ))
    return sorted(lines, key=lambda s: (s.video_id, s.index))


def video_sections(outputs: pd.DataFrame, lines: list[SegmentLine], link_for: LinkFor) -> list[VideoSection]:
    """Per video: its player, stills and segments. A presigned `output_link` wins over `link_for`."""
    def link(value) -> str | None:
        return link_for(Path(value)) if isinstance(value, str) and value else None

    sections = []
    for r in outputs.to_dict("records"):
        r = {k: _value(v) for k, v in r.items()}
        assembled = r.get("state") == "assembled"
        sections.append(VideoSection(
            video_id=r["video_id"], state=r.get("state") or "", error=r.get("error"),
            duration_seconds=r.get("duration_seconds"), target_seconds=r.get("target_seconds"),
            cost_usd=float(r.get("cost_usd") or 0.0), models=",".join(values(r.get("models"))),
            loudness_lufs=r.get("loudness_lufs"),
            video_link=(r.get("output_link") or link(r.get("output_path"))) if assembled else None,
            poster_link=link(r.get("poster")) if assembled else None,
            contact_link=link(r.get("contact_sheet")) if assembled else None,
            subtitles_link=link(r.get("subtitles_vtt")) if assembled else None,
            segments=[s for s in lines if s.video_id == r["video_id"]],
            credentials=_credentials(r.get("credentials")) if assembled else None,
            credentials_link=link(r.get("credentials_sidecar")) if assembled else None,
        ))
    return sections


def _credentials(record) -> dict | None:
    """A Content Credentials record with plain lists (Parquet gives arrays back)."""
    if not isinstance(record, dict):
        return None
    return {**record, "ingredients": [dict(i) for i in values(record.get("ingredients"))]}


# --- charts (inline SVG) ---------------------------------------------------------------------------------------


def _ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), raw)
    ticks, t = [0.0], 0.0
    while t < top - 1e-9:   # the last tick reaches past the top, so every value fits on the axis
        t += step
        ticks.append(round(t, 6))
    return ticks


def _esc(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


def latency_chart(lines: list[SegmentLine], catalog: Catalog) -> str:
    """Per model: its catalog profile (band from p50 to p95) and each job's provider latency as a dot."""
    models = sorted({s.model for s in lines if s.model in catalog.models})
    if not models:
        return '<p class="empty">No provider jobs to chart.</p>'
    observed = {m: [s.latency_seconds for s in lines if s.model == m and s.latency_seconds is not None]
                for m in models}
    top = max([catalog.models[m].latency.p95_seconds for m in models] + [v for vs in observed.values() for v in vs])
    ticks = _ticks(top * 1.1)
    top = ticks[-1] if ticks[-1] > 0 else 1.0
    left, width, row, pad = 190, 500, 34, 30
    height = pad + row * len(models) + 40
    x = lambda v: left + width * v / top   # noqa: E731
    parts = [f'<svg class="chart" id="latency-chart" role="img" viewBox="0 0 {left + width + 30} {height}" '
             f'width="{left + width + 30}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             '<title>Provider latency per model against the catalog profile (p50 to p95)</title>']
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" y1="{pad - 8}" x2="{x(t):.1f}" y2="{height - 32}" class="grid"/>'
                     f'<text x="{x(t):.1f}" y="{height - 16}" class="tick" text-anchor="middle">{t:g}s</text>')
    for i, m in enumerate(models):
        spec = catalog.models[m].latency
        y = pad + i * row
        parts.append(f'<text x="{left - 8}" y="{y + 15}" class="label" text-anchor="end">{_esc(m)}</text>')
        parts.append(f'<rect x="{x(0):.1f}" y="{y + 4}" width="{x(spec.p50_seconds) - x(0):.1f}" height="16" '
                     f'class="band-fast"><title>{_esc(m)}: up to p50 {spec.p50_seconds:g}s</title></rect>')
        parts.append(f'<rect x="{x(spec.p50_seconds):.1f}" y="{y + 4}" '
                     f'width="{x(spec.p95_seconds) - x(spec.p50_seconds):.1f}" height="16" class="band-slow">'
                     f'<title>{_esc(m)}: p50 {spec.p50_seconds:g}s to p95 {spec.p95_seconds:g}s</title></rect>')
        parts.append(f'<line x1="{x(spec.p50_seconds):.1f}" y1="{y + 1}" x2="{x(spec.p50_seconds):.1f}" '
                     f'y2="{y + 23}" class="p50"/>')
        for v in observed[m]:
            cls = "dot-bad" if v > spec.p95_seconds else "dot"
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y + 12}" r="6" class="{cls}">'
                         f'<title>{_esc(m)}: {v:.1f}s</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def cost_chart(by_video: dict[str, float], by_model: dict[str, float], budget_usd: float | None) -> str:
    """Dollars by video and by model, the campaign's total beside its budget (a dashed line)."""
    total = round(sum(by_video.values()), 4)
    rows: list[tuple[str, str, list[tuple[float, str]]]] = []
    colours = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(by_video)}
    rows.append(("total", "campaign total", [(c, colours[v]) for v, c in by_video.items()]))
    rows += [("video", v, [(c, colours[v])]) for v, c in by_video.items()]
    rows += [("model", m, [(c, "#64748b")]) for m, c in sorted(by_model.items(), key=lambda kv: -kv[1])]
    ticks = _ticks(max(total, budget_usd or 0) * 1.1 or 1.0)
    top = ticks[-1] if ticks[-1] > 0 else 1.0
    left, width, row, pad = 190, 500, 30, 30
    height = pad + row * len(rows) + 20 * 2 + 40
    x = lambda v: left + width * v / top   # noqa: E731
    parts = [f'<svg class="chart" id="cost-chart" role="img" viewBox="0 0 {left + width + 30} {height}" '
             f'width="{left + width + 30}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             "<title>Cost by video and by model against the budget</title>"]
    for t in ticks:
        parts.append(f'<line x1="{x(t):.1f}" y1="{pad - 8}" x2="{x(t):.1f}" y2="{height - 32}" class="grid"/>'
                     f'<text x="{x(t):.1f}" y="{height - 16}" class="tick" text-anchor="middle">${t:g}</text>')
    y, group = pad, None
    for kind, name, pieces in rows:
        if kind != group and group is not None:
            y += 20
        group = kind
        label = name if kind != "model" or name == SPEECH else f"model {name}"
        parts.append(f'<text x="{left - 8}" y="{y + 15}" class="label" text-anchor="end">{_esc(label)}</text>')
        start = 0.0
        for amount, colour in pieces:
            parts.append(f'<rect x="{x(start):.1f}" y="{y + 3}" width="{max(x(start + amount) - x(start), 0.5):.1f}" '
                         f'height="18" fill="{colour}"><title>{_esc(name)}: ${amount:.2f}</title></rect>')
            start += amount
        parts.append(f'<text x="{x(start) + 6:.1f}" y="{y + 16}" class="value">${start:.2f}</text>')
        y += row
    if budget_usd:
        over = total > budget_usd
        parts.append(f'<line x1="{x(budget_usd):.1f}" y1="{pad - 10}" x2="{x(budget_usd):.1f}" y2="{height - 32}" '
                     f'class="budget{" over" if over else ""}"/>'
                     f'<text x="{x(budget_usd) - 4:.1f}" y="{pad - 14}" class="budget-label" text-anchor="end">'
                     f'budget ${budget_usd:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- the page --------------------------------------------------------------------------------------------------

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Campaign {{ campaign }}: report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:0;background:#f8fafc;color:#0f172a}
header{background:#0f172a;color:#f8fafc;padding:18px 28px}
header h1{margin:0 0 6px;font-size:22px}
.facts{display:flex;flex-wrap:wrap;gap:8px 26px;margin:0;padding:0;list-style:none;color:#cbd5e1}
.facts b{color:#fff}
main{padding:18px 28px;max-width:1280px}
h2{font-size:18px;margin:22px 0 10px}
.charts{display:flex;flex-wrap:wrap;gap:18px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:14px 16px;margin-bottom:18px}
.card h3{margin:0 0 8px;font-size:15px}
.legend{font-size:12px;color:#475569;margin:6px 0 0}
.legend i{display:inline-block;width:12px;height:12px;vertical-align:-2px;margin:0 4px 0 10px;border-radius:2px}
.chart .grid{stroke:#e2e8f0}.chart .tick{font-size:11px;fill:#64748b}
.chart .label{font-size:12px;fill:#0f172a}.chart .value{font-size:12px;fill:#334155}
.chart .band-fast{fill:#bbf7d0}.chart .band-slow{fill:#fde68a}.chart .p50{stroke:#15803d;stroke-width:2}
.chart .dot{fill:#2563eb;stroke:#fff;stroke-width:1.5}.chart .dot-bad{fill:#dc2626;stroke:#fff;stroke-width:1.5}
.chart .budget{stroke:#16a34a;stroke-width:2;stroke-dasharray:6 4}.chart .budget.over{stroke:#dc2626}
.chart .budget-label{font-size:12px;fill:#15803d}
.video{display:grid;grid-template-columns:minmax(320px,480px) 1fr;gap:16px;align-items:start}
video{width:100%;background:#000;border-radius:6px}
.stills{display:flex;gap:10px;flex-wrap:wrap}
.stills figure{margin:0}.stills img{display:block;max-width:100%;border:1px solid #e2e8f0;border-radius:4px}
.stills .poster img{width:200px}.stills .contact img{width:420px}
figcaption{font-size:12px;color:#64748b}
table{border-collapse:collapse;width:100%;margin-top:10px;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#f1f5f9;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state-failed,.bad{color:#b91c1c;font-weight:600}.good{color:#15803d}.ok{color:#a16207}
.reason{color:#475569;max-width:360px}.failed-video{border-left:4px solid #dc2626}
.empty{color:#64748b}
.credentials{font-size:13px;color:#334155}.credentials ul{margin:4px 0 0;padding-left:18px}
</style></head><body>
<header><h1>Campaign {{ campaign }}</h1>
<ul class="facts">
<li><b>{{ assembled }}</b> of {{ sections|length }} video(s) assembled</li>
<li><b>{{ segments|length }}</b> segment(s), {{ failed_segments }} failed</li>
<li>{% if spend_words %}<b>{{ spend_words }}</b> (every run's jobs, each once){% else %}cost <b>${{ "%.2f"|format(total_cost) }}</b>{% endif %}{% if budget %} of ${{ "%.2f"|format(budget) }} budget{% endif %}</li>
<li>estimated ${{ "%.2f"|format(est_cost) }}</li>
<li>generated {{ generated }}</li>
</ul></header>
<main>
{% if uncertain %}<section class="card failed-video" id="uncertain"><h2>Uncertain: the provider may have made these</h2>
<p>Each request below was sent and its answer was lost; the provider's API cannot be searched for the job it may have
created (and billed), so nothing was sent again. Check the provider's console, then decide with
<code>video-pipeline resolve</code>.</p><ul>
{% for u in uncertain %}<li class="state-failed">{{ u }}</li>{% endfor %}</ul></section>{% endif %}
<h2>Charts</h2>
<div class="charts">
<section class="card"><h3>Provider latency per model against its profile</h3>{{ latency_svg|safe }}
<p class="legend"><i style="background:#bbf7d0"></i>0 to p50<i style="background:#fde68a"></i>p50 to p95
<i style="background:#2563eb;border-radius:6px"></i>a job<i style="background:#dc2626;border-radius:6px"></i>slower than p95</p>
</section>
<section class="card"><h3>Cost by video and by model{% if budget %} against the budget{% endif %}</h3>{{ cost_svg|safe }}
{% if not budget %}<p class="legend">No budget set for this campaign.</p>{% endif %}</section>
</div>
<h2>Videos</h2>
{% for v in sections %}
<section class="card{% if v.state != 'assembled' %} failed-video{% endif %}" id="video-{{ v.video_id }}">
<h3>{{ v.video_id }}{% if v.state != 'assembled' %} <span class="state-failed">not assembled</span>{% endif %}</h3>
{% if v.state == 'assembled' %}
<div class="video">
<div><video controls preload="metadata"{% if v.poster_link %} poster="{{ v.poster_link }}"{% endif %}>
<source src="{{ v.video_link }}" type="video/mp4">
{% if v.subtitles_link %}<track kind="subtitles" src="{{ v.subtitles_link }}" srclang="en" label="Subtitles" default>{% endif %}
</video>
<p><a href="{{ v.video_link }}">{{ v.video_id }}.mp4</a>: {{ "%.2f"|format(v.duration_seconds) }}s
(target {{ "%g"|format(v.target_seconds) }}s), ${{ "%.2f"|format(v.cost_usd) }}, {{ v.models }}
{%- if v.loudness_lufs is not none %}, {{ "%.1f"|format(v.loudness_lufs) }} LUFS{% endif %}</p>
{% if v.credentials %}{% set c = v.credentials %}<div class="credentials">
{% if c.state == "off" %}<p><b>Content Credentials</b>: off (the campaign says <code>provenance: off</code>)</p>
{% else %}<p><b>Content Credentials</b> ({{ c.validation or c.state }}): signed by {{ c.signer }}
{%- if c.development %} <span class="bad">(untrusted development credentials)</span>{% endif %};
generator {{ c.generator }}; AI disclosure: <b>{{ c.source_type }}</b>
{%- if v.credentials_link %}; <a href="{{ v.credentials_link }}">manifest facts (.c2pa.json)</a>{% endif %}</p>
<ul class="ingredients">{% for i in c.ingredients %}<li>{{ i.title }}{% if i.source_type %}: {{ i.source_type }}{% endif %}</li>{% endfor %}</ul>{% endif %}
{% if c.label %}<p>Visible label: {{ c.label }}</p>{% endif %}</div>{% endif %}</div>
<div class="stills">
{% if v.poster_link %}<figure class="poster"><img src="{{ v.poster_link }}" alt="poster of {{ v.video_id }}"><figcaption>poster</figcaption></figure>{% endif %}
{% if v.contact_link %}<figure class="contact"><img src="{{ v.contact_link }}" alt="contact sheet of {{ v.video_id }}"><figcaption>contact sheet</figcaption></figure>{% endif %}
</div></div>
{% else %}<p class="state-failed">{{ v.error }}</p>{% endif %}
<table class="segments"><thead><tr><th>#</th><th>model</th><th>route reason</th><th>latency</th>
<th>profile p50 / p95</th><th>attempts</th><th>fallbacks</th><th>est. $</th><th>cost $</th><th>state</th></tr></thead><tbody>
{% for s in v.segments %}<tr>
<td class="num">{{ s.index }}</td>
<td>{{ s.model }}{% if s.planned_model != s.model %}<br><small>planned {{ s.planned_model }}</small>{% endif %}</td>
<td class="reason">{{ s.reason }}</td>
<td class="num">{% if s.latency_seconds is not none %}{{ "%.1f"|format(s.latency_seconds) }}s<br><small class="{{ s.verdict_class }}">{{ s.verdict }}</small>{% else %}-{% endif %}</td>
<td class="num">{% if s.p50 %}{{ "%g"|format(s.p50) }}s / {{ "%g"|format(s.p95) }}s{% endif %}</td>
<td class="num">{{ s.attempts }}</td><td>{{ s.fallbacks or "-" }}</td>
<td class="num">{{ "%.2f"|format(s.est_cost_usd) }}</td><td class="num">{{ "%.2f"|format(s.cost_usd) }}</td>
<td class="state-{{ s.state }}">{{ s.state }}{% if s.reused %} (reused){% endif %}{% if s.resumed %} (resumed){% endif %}
{% if s.error %}<br><small>{{ s.error }}</small>{% endif %}</td></tr>
{% endfor %}</tbody></table>
</section>
{% endfor %}
<p class="legend">Latency is the provider's time for the job as recorded in the job ledger, on the same scale as the
catalog's p50/p95 profile. Files are linked relative to this page{% if presigned %} or through presigned links that expire{% endif %}.</p>
</main></body></html>
"""

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))


def render_report(campaign: str, plans: pd.DataFrame, segments: pd.DataFrame, outputs: pd.DataFrame,
                  catalog: Catalog, budget_usd: float | None, provider_latency: dict[str, float],
                  link_for: LinkFor, generated: dt.datetime | None = None, spend_words: str = "",
                  uncertain: list[str] | None = None) -> str:
    """The report's HTML for one campaign, from the plan, the engine's outcomes and the assembled outputs."""
    lines = segment_lines(plans, segments, catalog, provider_latency)
    sections = video_sections(outputs, lines, link_for)
    by_model: dict[str, float] = {}
    for s in lines:
        by_model[s.model] = round(by_model.get(s.model, 0.0) + s.cost_usd, 4)
    by_video = {}
    for v in sections:   # what the video's jobs cost, plus its narration once it was assembled with it
        jobs = round(sum(s.cost_usd for s in v.segments), 4)
        speech = round(v.cost_usd - jobs, 4) if v.state == "assembled" else 0.0
        by_video[v.video_id] = round(jobs + max(speech, 0.0), 4)
        if speech > 0.0001:
            by_model[SPEECH] = round(by_model.get(SPEECH, 0.0) + speech, 4)
    generated = generated or dt.datetime.now(dt.timezone.utc)
    return _env.from_string(_TEMPLATE).render(
        campaign=campaign, sections=sections, segments=lines, budget=budget_usd,
        assembled=sum(1 for s in sections if s.state == "assembled"),
        failed_segments=sum(1 for s in lines if s.state not in ("succeeded", "stored")),
        total_cost=sum(by_video.values()), est_cost=float(plans["est_cost_usd"].sum()) if len(plans) else 0.0,
        generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
        latency_svg=latency_chart(lines, catalog), cost_svg=cost_chart(by_video, by_model, budget_usd),
        presigned="output_link" in outputs and outputs["output_link"].notna().any(),
        spend_words=spend_words, uncertain=uncertain or [],
    )


def provider_latencies(rows: Iterable) -> dict[str, float]:
    """job key → the provider latency of its finished job, from ledger rows (newest wins)."""
    found: dict[str, float] = {}
    for row in sorted(rows, key=lambda r: r.id):
        if row.state in ("succeeded", "stored") and row.latency_seconds is not None:
            found[row.job_key] = float(row.latency_seconds)
    return found


def write_report(path: Path, html: str) -> Path:
    """Write atomically: a browser open on the old report never reads half a page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = private_sibling(path)
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)
    return path


def report_path(outputs_dir: Path, campaign: str) -> Path:
    return Path(outputs_dir) / campaign / REPORT_NAME


def campaign_report(settings, campaign: str, plans: pd.DataFrame, segments: pd.DataFrame, outputs: pd.DataFrame,
                    catalog: Catalog, budget_usd: float | None, link_for: LinkFor | None = None) -> Path:
    """Write `<outputs>/<campaign>/report.html` and return its path. Latencies come from the job ledger (a job
    reused from another campaign is found by its key)."""
    from video_pipeline.jobs.ledger import JobLedger

    from video_pipeline.jobs.spend import campaign_spend, spent_words

    ledger = JobLedger(settings.ledger_url)
    try:
        rows = ledger.campaign_rows(campaign)
        latency = provider_latencies(rows)
        for key in set(segments["job_key"].dropna()) - set(latency):
            latency.update(provider_latencies(ledger.rows(key)))
        words = spent_words(campaign_spend(ledger, campaign))
        uncertain = [f"{r.video_id} segment {r.segment_index}: {r.model} on {r.provider}, sent between "
                     f"{r.uncertain_since:%Y-%m-%d %H:%M:%S} and {r.uncertain_until:%H:%M:%S} UTC (ledger job {r.id})"
                     for r in ledger.uncertain_rows(campaign=campaign) if r.uncertain_since and r.uncertain_until]
    finally:
        ledger.dispose()
    path = report_path(settings.outputs_dir, campaign)
    html = render_report(campaign, plans, segments, outputs, catalog, budget_usd, latency,
                         link_for or relative_links(path.parent), spend_words=words, uncertain=uncertain)
    return write_report(path, html)
