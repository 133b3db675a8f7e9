"""The campaign report as a person opens it: the sample campaign's page in headless Chromium shows a player per
video that loads its MP4, the poster and contact sheet, the segment table and both charts."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from tests.browser import keep_doc_image, region_stats, run_chromium, screenshot
from tests.demo_run import demo_run
from video_pipeline.planning.catalog import load_catalog
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.report.page import render_report

pytestmark = pytest.mark.slow           # every test reads the report of one ./scripts/demo run

WINDOW = (1280, 2000)

# Appended to a copy of the report (the report itself has no script): what Chromium made of each element.
PROBE = """<script>
const result = {videos: [], images: [], rects: {}};
function write() {
  let pre = document.getElementById('probe');
  if (!pre) { pre = document.createElement('pre'); pre.id = 'probe'; pre.style.display = 'none';
              document.body.appendChild(pre); }
  pre.textContent = JSON.stringify(result);
}
function rect(el) { const r = el.getBoundingClientRect();
  return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; }
window.addEventListener('load', () => {
  document.querySelectorAll('video').forEach((v, i) => {
    const entry = {src: v.currentSrc || v.querySelector('source').src, duration: null, width: 0, error: null,
                   rect: rect(v)};
    result.videos.push(entry);
    const seen = () => { entry.duration = v.duration; entry.width = v.videoWidth; write(); };
    if (v.readyState >= 1) seen(); else v.addEventListener('loadedmetadata', seen);
    v.addEventListener('error', () => { entry.error = v.error ? v.error.code : 'error'; write(); });
    v.querySelector('source').addEventListener('error', () => { entry.error = 'source'; write(); });
  });
  document.querySelectorAll('img').forEach(img => result.images.push(
      {alt: img.alt, width: img.naturalWidth, complete: img.complete, rect: rect(img)}));
  document.querySelectorAll('svg.chart').forEach(svg => result.rects[svg.id] = rect(svg));
  write();
});
</script>"""


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    run = demo_run(tmp_path_factory)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_demo_prints_progress_lines_and_where_the_report_is(demo):
    lines = demo.stdout.splitlines()
    assert "\x1b[" not in demo.stdout, "stdout is a pipe: progress must be plain lines, not terminal codes"
    progress = [line for line in lines if line.startswith("segments: ")]
    assert progress and progress[-1].startswith("segments: 3/3 done, 0 running, 0 queued, 0 failed; would cost $1.62")
    assert f"report: {demo.report}" in lines
    assert lines[-1].startswith("campaign launch-teaser: succeeded")


def test_report_is_self_contained_and_links_only_files_beside_it(demo):
    html = demo.report.read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert re.findall(r"https?://[^\"' )]+", html) == ["http://www.w3.org/2000/svg"] * 2   # SVG namespaces only
    parser = _Collect()
    parser.feed(html)
    linked = [a.get("src") or a.get("href") or a.get("poster") for t, a in parser.tags
              if t in ("source", "img", "a", "track")] + [a["poster"] for t, a in parser.tags if t == "video"]
    assert len(linked) >= 2 * 4
    for link in linked:
        assert not link.startswith("/") and (demo.report.parent / link).is_file(), link


@pytest.mark.browser
def test_report_in_chromium_shows_players_contact_sheets_and_both_charts(demo, tmp_path):
    probe = demo.report.with_name("report.probe.html")
    probe.write_text(demo.report.read_text().replace("</body>", PROBE + "</body>"))
    dom = run_chromium(probe.as_uri(), "--virtual-time-budget=8000", "--dump-dom", window=WINDOW)
    found = json.loads(re.search(r'<pre id="probe"[^>]*>(.*?)</pre>', dom, re.S).group(1).replace("&quot;", '"'))

    # players: one per video, each loading its MP4 (duration and width read by the browser itself)
    videos = {Path(v["src"]).stem: v for v in found["videos"]}
    assert set(videos) == {"teaser", "product-still"}
    for name, seconds in (("teaser", 12.06), ("product-still", 5.02)):
        assert videos[name]["error"] is None, videos[name]
        assert abs(videos[name]["duration"] - seconds) < 0.3 and videos[name]["width"] == 1280, videos[name]
    # poster and contact sheet of each video, decoded
    images = {i["alt"]: i for i in found["images"]}
    for name in ("teaser", "product-still"):
        for kind in ("poster", "contact sheet"):
            assert images[f"{kind} of {name}"]["width"] > 100, images
    # the segment table: model, route reason, latency against the profile, attempts, fallbacks, cost
    parser = _Collect()
    parser.feed(dom)
    assert sum(1 for t, a in parser.tags if t == "tr") == 3 + 2   # three segments, a header row per video
    assert "veo-3-1-fast" in dom and "kling-3-0" in dom and "guide rule" in dom and "20s / 45s" in dom
    # both charts, with their marks: three job dots on the latency chart, the budget line on the cost chart
    latency_svg = re.search(r'<svg[^>]*id="latency-chart".*?</svg>', dom, re.S).group(0)
    cost_svg = re.search(r'<svg[^>]*id="cost-chart".*?</svg>', dom, re.S).group(0)
    assert len(re.findall(r'<circle', latency_svg)) == 3
    assert 'class="budget"' in cost_svg and "budget $12.00" in cost_svg

    # the screenshot shows them: charts drawn in colour, stills and players not blank
    shot = tmp_path / "report.png"
    pixels = screenshot(demo.report.as_uri(), shot, window=WINDOW)
    assert pixels.shape[:2] == (WINDOW[1], WINDOW[0])
    for chart in ("latency-chart", "cost-chart"):
        colours, inked = region_stats(pixels, found["rects"][chart])
        assert colours >= 8 and inked > 0.02, (chart, colours, inked)
    for image in ("contact sheet of teaser", "poster of teaser"):
        colours, inked = region_stats(pixels, images[image]["rect"])
        assert colours > 200 and inked > 0.5, (image, colours, inked)
    colours, inked = region_stats(pixels, videos["teaser"]["rect"])
    assert colours > 200 and inked > 0.5, ("player", colours, inked)
    keep_doc_image(shot, "report.png")


def test_report_links_through_the_stores_hook_when_it_gives_urls(demo):
    """A store that serves files by URL (presigned S3 links) decides every link; nothing points at local paths."""
    tables = demo.data_dir / "tables"
    frames = {n: pd.read_parquet(tables / n / "launch-teaser.parquet")
              for n in ("routed_job_plans", "generated_segments", "assembled_outputs")}
    html = render_report("launch-teaser", frames["routed_job_plans"], frames["generated_segments"],
                         frames["assembled_outputs"], load_catalog(PROJECT_ROOT / "data" / "catalog.yaml"), 12.0, {},
                         link_for=lambda p: f"https://bucket.s3.example/outputs/{p.name}?X-Amz-Signature=abc")
    parser = _Collect()
    parser.feed(html)
    sources = [a["src"] for t, a in parser.tags if t in ("source", "img")]
    assert len(sources) == 6
    assert all(s.startswith("https://bucket.s3.example/outputs/") for s in sources), sources
    assert "teaser.contact.png?X-Amz-Signature=abc" in html


def test_report_names_a_failed_segment_and_its_video_without_a_player(demo):
    """What a person asks when a clip failed: which one, on which models, why, and what was spent anyway."""
    tables = demo.data_dir / "tables"
    frames = {n: pd.read_parquet(tables / n / "launch-teaser.parquet")
              for n in ("routed_job_plans", "generated_segments", "assembled_outputs")}
    segments = frames["generated_segments"].astype({"error": object, "fallbacks_taken": object})
    outputs = frames["assembled_outputs"].astype({"error": object})
    still = segments.index[segments["video_id"] == "product-still"][0]
    segments.loc[still, ["state", "error", "attempts", "cost_usd"]] = [
        "failed", "kling: task failed: <content policy>", 3, 0.0]
    segments.at[still, "fallbacks_taken"] = ["kling-3-0 → hailuo-2-3"]      # a list column: one entry per fallback
    outputs.loc[outputs["video_id"] == "product-still", ["state", "error"]] = ["failed", "1 of 1 segments missing"]
    html = render_report("launch-teaser", frames["routed_job_plans"], segments, outputs,
                         load_catalog(PROJECT_ROOT / "data" / "catalog.yaml"), 12.0, {}, link_for=lambda p: p.name)
    section = html[html.index('id="video-product-still"'):]
    assert "not assembled" in section and "1 of 1 segments missing" in section and "<video" not in section
    assert "kling: task failed: &lt;content policy&gt;" in section   # escaped, never markup
    assert "kling-3-0 → hailuo-2-3" in section and 'class="state-failed">failed' in section
    assert "<b>1</b> of 2 video(s) assembled" in html and "3</b> segment(s), 1 failed" in html
    assert "cost <b>$1.20</b> of $12.00 budget" in html   # the failed segment cost nothing
