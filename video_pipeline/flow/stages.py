"""The pipeline's stages as plain functions over tables: what each Dagster asset calls.

prompt batches → routed job plans → generated segments → stored clips → assembled outputs
"""

from __future__ import annotations

import datetime as dt
import json
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pandas as pd

from video_pipeline.atomic import private_sibling, sweep
from video_pipeline.spec.campaign import Campaign
from video_pipeline.planning.catalog import Catalog
from video_pipeline.config import Settings, SettingsError
from video_pipeline.jobs.engine import JobEngine, SegmentOutcome, run_segments
from video_pipeline.errors import MediaError, PlanningError, ProviderError
from video_pipeline.jobs.ledger import JobLedger, JobRow
from video_pipeline.media.assemble import SegmentInput, assembly_budget, concat
from video_pipeline.media.ffmpeg import budgeted, side_by_side
from video_pipeline.media.mix import MixSpec, final_sound
from video_pipeline.media.probe import probe
from video_pipeline.media.render import frame_size
from video_pipeline.storage.netguard import DownloadPolicy
from video_pipeline.planning.observed import ObservationLog
from video_pipeline.planning.planner import PLAN_COLUMNS, CampaignPlan, SegmentPlan, plan_campaign
from video_pipeline.providers.base import ProviderRegistry
from video_pipeline.providers.local import LocalProvider
from video_pipeline.storage.store import ClipStore
from video_pipeline.tables import (
    ASSEMBLED_OUTPUTS,
    GENERATED_SEGMENTS,
    NARRATION_TRACKS,
    PROMPT_BATCHES,
    ROUTED_JOB_PLANS,
    STORED_CLIPS,
    records,
    values,
)
from video_pipeline.spec.taxonomy import shot_category


def clear_leftovers(settings: Settings, campaign_id: str) -> list[Path]:
    """Temporary files and folders killed runs left behind (a half download `clips/incoming-*`, a join's
    `outputs/<campaign>/vp-join-*`, any writer's hidden `.<name>.<tag>-*`, `vp-*` in the system's temporary folder),
    removed before this campaign's run writes anything: only those whose writer is gone (`atomic.sweep`), never
    a live run's, of this campaign or another."""
    import tempfile

    places = [(settings.clips_dir, "incoming-"), (settings.outputs_dir / campaign_id, ""),
              (settings.campaigns_dir, "."), (settings.archive_dir, "."), (Path(tempfile.gettempdir()), "vp-")]
    for parent in (settings.tables_dir, settings.data_dir / "narration"):
        if parent.is_dir():
            places += [(folder, ".") for folder in parent.iterdir() if folder.is_dir() and not folder.is_symlink()]
    return [path for folder, prefix in places for path in sweep(folder, prefix)]


def prompt_batches(campaign: Campaign) -> pd.DataFrame:
    """One row per requested shot."""
    d = campaign.defaults
    rows = []
    for video in campaign.videos:
        for si, shot in enumerate(video.shots):
            category = shot_category(shot, video, d.use_case)
            rows.append({
                "campaign": campaign.campaign, "video_id": video.id, "shot_index": si, "prompt": shot.prompt,
                "category": category.value, "quality_tier": d.quality_tier, "use_case": d.use_case,
                "resolution": d.resolution, "aspect_ratio": d.aspect_ratio, "target_seconds": video.target_seconds,
                "continuity": video.continuity, "transition": video.transition, "image": shot.image,
                "video": shot.video, "transform": shot.transform, "audio": video.audio, "pinned_model": shot.model,
                "schedule": campaign.schedule, "spec_sha256": campaign.source.sha256,
            })
    return PROMPT_BATCHES.rows(rows)


def narration_voice(settings: Settings, catalog: Catalog):
    """The TTS provider for this mode: OpenAI or ElevenLabs live when their keys are set, else espeak-ng offline."""
    from video_pipeline.providers.espeak import EspeakProvider

    if settings.mode == "live" and (key := settings.secret("OPENAI_API_KEY")):
        from video_pipeline.providers.openai_tts import OpenAISpeechProvider

        return OpenAISpeechProvider(key), catalog.tts["openai-gpt-4o-mini-tts"], "alloy"
    if settings.mode == "live" and (key := settings.secret("ELEVENLABS_API_KEY")):
        from video_pipeline.providers.elevenlabs import ElevenLabsProvider

        return ElevenLabsProvider(key), catalog.tts["elevenlabs-multilingual-v2"], "21m00Tcm4TlvDq8ikWAM"
    return EspeakProvider(), catalog.tts["local-espeak"], "en"


def narration_tracks(campaign: Campaign, catalog: Catalog, settings: Settings, voice=None) -> pd.DataFrame:
    """Speak each video's narration (one row per narrated video), kept content-addressed: the same text with the
    same voice is synthesized once."""
    import asyncio
    import hashlib

    from video_pipeline.providers.tts import TtsRequest

    provider, spec, default_voice = voice or narration_voice(settings, catalog)
    rows = []

    async def speak_all() -> None:
        try:
            for video in campaign.videos:
                if not video.narration:
                    continue
                chosen = campaign.defaults.voice or default_voice
                key = hashlib.sha256(json.dumps([provider.name, spec.model_id, chosen, video.narration]).encode())
                sha = key.hexdigest()
                dest = settings.data_dir / "narration" / sha[:2] / f"{sha}.m4a"
                meta = dest.with_suffix(".json")
                if dest.exists() and meta.exists():
                    result = json.loads(meta.read_text())
                else:
                    spoken = await provider.synthesize(TtsRequest(text=video.narration, voice=chosen,
                                                                  model_id=spec.model_id, response_format="aac"), dest)
                    result = {"duration_seconds": spoken.duration_seconds, "characters": spoken.characters,
                              "timings": [[t.text, t.start_seconds, t.end_seconds] for t in spoken.timings]}
                    meta.write_text(json.dumps(result))
                timings = [{"text": t, "start_seconds": a, "end_seconds": b} for t, a, b in result["timings"]]
                rows.append({"campaign": campaign.campaign, "video_id": video.id, "provider": provider.name,
                             "voice": chosen, "audio_path": str(dest), "duration_seconds": result["duration_seconds"],
                             "timings": timings, "characters": result["characters"],
                             "cost_usd": round(spec.price_per_1k_chars * result["characters"] / 1000, 4),
                             "sha256": sha})
        finally:
            await provider.aclose()

    asyncio.run(speak_all())
    return NARRATION_TRACKS.rows(rows)


def narration_seconds(narration: pd.DataFrame | None) -> dict[str, float]:
    if narration is None or narration.empty:
        return {}
    return {r.video_id: float(r.duration_seconds) for r in narration.itertuples()}


def shot_categories(batches: pd.DataFrame | None) -> dict[tuple[str, int], str] | None:
    if batches is None:
        return None
    return {(r.video_id, int(r.shot_index)): r.category for r in batches.itertuples()}


def plan_frame(plan: CampaignPlan) -> pd.DataFrame:
    return ROUTED_JOB_PLANS.rows(plan.rows())


def observation_log(settings: Settings) -> ObservationLog:
    return ObservationLog(settings.ledger_url)


def job_ledger(settings: Settings) -> JobLedger:
    return JobLedger(settings.ledger_url)


def routed_job_plans(campaign: Campaign, catalog: Catalog, settings: Settings, on: dt.date | None = None,
                     providers: frozenset[str] | None = None, narration: pd.DataFrame | None = None,
                     batches: pd.DataFrame | None = None) -> tuple[CampaignPlan, pd.DataFrame]:
    """Plan with what has been observed of each model (latency, failures) blended into the catalog's priors;
    each shot is routed as the category `batches` (the prompt_batches table) gave it."""
    log = observation_log(settings)
    try:
        observed = log.summary()
    finally:
        log.dispose()
    if providers is None:
        providers = live_provider_names(settings)
    try:
        plan = plan_campaign(campaign, catalog, settings.data_dir, on=on, providers=providers, observed=observed,
                             narration=narration_seconds(narration), categories=shot_categories(batches))
    except PlanningError as exc:
        if providers is not None and "no configured provider" in str(exc):
            raise PlanningError(f"{exc}\n{missing_key_hint(catalog, providers)}") from None
        raise
    return plan, plan_frame(plan)


def segments_from_frame(frame: pd.DataFrame) -> list[SegmentPlan]:
    segments = []
    for row in records(frame):
        row["fallbacks"] = tuple(values(row["fallbacks"]))
        row["options"] = dict(row["options"] or {})
        row["segment_index"], row["segment_count"], row["shot_index"] = (int(row["segment_index"]),
                                                                        int(row["segment_count"]), int(row["shot_index"]))
        row["generate_seconds"] = int(row["generate_seconds"])
        segments.append(SegmentPlan(**{k: row[k] for k in PLAN_COLUMNS}))
    return segments


def build_registry(settings: Settings, catalog: Catalog) -> ProviderRegistry:
    """local: the offline renderer serves every model. fake: the live adapters against the fake servers of
    `video-pipeline fakes serve`, for the providers whose keys the settings hold (every provider when none is
    set), with the fakes' test keys. live: the adapters whose API keys the settings hold."""
    if settings.mode == "local":
        local = LocalProvider(catalog, settings.work_dir, time_scale=settings.time_scale, seed=settings.seed,
                              preset=settings.x264_preset, font=settings.font_path)
        return ProviderRegistry(catalog, {}, local=local)
    from video_pipeline.providers.live import ADAPTERS, configured_providers, required_keys

    if settings.mode == "fake":
        from video_pipeline.providers.fakes.fleet import fixed_environment, fleet_is_up

        if not fleet_is_up(settings.fakes_port):
            raise SettingsError(f"VIDEO_PIPELINE_MODE=fake but no fake servers answer on 127.0.0.1:"
                                f"{settings.fakes_port}; start them with `video-pipeline fakes serve` (or set "
                                "VIDEO_PIPELINE_FAKES_PORT)")
        # the fakes' URLs and test keys, for the providers this environment names (all when it names none)
        fleet = Settings.from_env(fixed_environment(settings.fakes_port, live_provider_names(settings)))
        providers = configured_providers(settings.with_overrides(base_urls=fleet.base_urls, secrets=fleet.secrets))
        for adapter in providers.values():
            # fake jobs finish in about a second: poll on the catalog's schedule scaled like the local provider's
            adapter.latency_scale = settings.time_scale
        return ProviderRegistry(catalog, providers)
    providers = configured_providers(settings)
    if not providers:
        names = ", ".join(k for p in ADAPTERS for k in required_keys(p))
        raise SettingsError(f"VIDEO_PIPELINE_MODE=live but no provider API key is set; set at least one of {names} "
                            "(or VIDEO_PIPELINE_MODE=local to render offline)")
    return ProviderRegistry(catalog, providers)


def live_provider_names(settings: Settings) -> frozenset[str] | None:
    """The providers planning may route to: in live mode those whose keys are set; in fake mode those too, when
    any are (else None: every fake); None in local mode."""
    if settings.mode == "local":
        return None
    from video_pipeline.providers.live import configured_names

    named = configured_names(settings.keys())
    return named if settings.mode == "live" or named else None


def missing_key_hint(catalog: Catalog, configured: frozenset[str]) -> str:
    from video_pipeline.providers.live import ADAPTERS, required_keys

    lines = [f"{p}: {' + '.join(required_keys(p))}" for p in sorted(ADAPTERS) if p not in configured]
    return "Providers without keys (set a variable to route there): " + "; ".join(lines)


def generated_segments(plan_df: pd.DataFrame, catalog: Catalog, settings: Settings,
                       registry: ProviderRegistry | None = None, on_change=None,
                       budget_usd: float | None = None, store: ClipStore | None = None) -> pd.DataFrame:
    """Run every planned segment; one outcome row per segment (failed and uncertain ones included, with the
    reason). Every submission reserves its estimated cost against `budget_usd` (shared by every run of the
    campaign) before it is sent. Jobs in flight that a dead run left (any campaign) are taken over meanwhile;
    `store` keeps the clips of those that succeed."""
    registry = registry or build_registry(settings, catalog)
    ledger = job_ledger(settings)
    if len(plan_df):
        ledger.set_budget(str(plan_df["campaign"].iloc[0]), budget_usd)
    log = ObservationLog(ledger.engine)

    def keep(row: JobRow, status) -> None:
        """A dead run's job that succeeded here: its clip kept as its own run's stored_clips would."""
        clip = store.store_url(status.output_url, headers=registry.download_headers(row.provider, status.output_url),
                               allow_file=row.provider == "local")
        ledger.stored(row.job_key, uri=clip.uri, sha256=clip.sha256)

    engine = JobEngine(catalog, registry, settings.data_dir, settings.work_dir, seed=settings.seed, on_change=on_change,
                       on_attempt=log.record, ledger=ledger, webhooks=settings.webhooks, budget_usd=budget_usd,
                       download_policy=DownloadPolicy.from_settings(settings), keep=keep if store else None)
    try:
        outcomes: list[SegmentOutcome] = run_segments(engine, segments_from_frame(plan_df))
    finally:
        ledger.dispose()
    return GENERATED_SEGMENTS.rows([o.row() for o in outcomes])


#: provider outputs fetched and verified at a time by `stored_clips` (each mostly waits: on a CDN, on a decode)
DOWNLOADS_AT_ONCE = 8


def stored_clips(outcomes: pd.DataFrame, store: ClipStore, ledger: JobLedger | None = None,
                 download_headers=None, fetch_output=None) -> pd.DataFrame:
    """Download each succeeded output, verify it decodes and lasts what was asked, keep it content-addressed.
    `download_headers(provider, url)` and `fetch_output(provider, url, dest)` are the registry's (an output the
    provider must fetch itself, such as Vertex's inline bytes).

    The ledger learns each stored URI, so a rerun reuses the clip instead of paying for it again. Up to
    DOWNLOADS_AT_ONCE outputs are fetched and verified at a time (each waits on the network or on a decode)."""

    def keep(o: dict) -> dict:
        row = {k: o.get(k) for k in ("campaign", "video_id", "segment_index", "job_key", "model", "seconds", "cost_usd",
                                     "latency_seconds", "target_seconds", "resolution", "aspect_ratio", "reused")}
        row.update(source_url=o["output_url"], state=o["state"], error=o["error"])
        if o["state"] == "succeeded":
            try:
                headers = download_headers(o["provider"], o["output_url"]) if download_headers else None
                # file:// URLs come only from the local provider or from clips this store already holds
                allow_file = o["provider"] == "local" or bool(o.get("reused"))
                held = store.held(o["output_url"]) if o.get("reused") else None   # already kept: not copied again
                fetcher = partial(fetch_output, o["provider"]) if fetch_output else None
                clip = held or store.store_url(
                    o["output_url"], expected_seconds=float(o["generate_seconds"]), headers=headers,
                    allow_file=allow_file, fetcher=fetcher)
                if ledger is not None:
                    ledger.stored(o["job_key"], uri=clip.uri, sha256=clip.sha256)
                row.update(clip_uri=clip.uri, clip_path=str(clip.path), sha256=clip.sha256, size_bytes=clip.size_bytes,
                           duration_seconds=round(clip.info.duration, 3), width=clip.info.width,
                           height=clip.info.height, state="stored")
            except (ProviderError, MediaError, OSError) as exc:
                row.update(state="failed", error=f"storing failed: {exc}")
                if ledger is not None and o["provider"] != "local":
                    # the next run asks the provider for a fresh URL rather than trying this one again
                    ledger.url_unusable(o["job_key"], f"download failed: {exc}")
        return row

    pending = outcomes.to_dict("records")
    with ThreadPoolExecutor(max_workers=max(1, min(DOWNLOADS_AT_ONCE, len(pending)))) as pool:
        rows = list(pool.map(keep, pending))
    return STORED_CLIPS.rows(rows)


def assembled_outputs(clips: pd.DataFrame, settings: Settings, campaign: Campaign | None = None,
                      narration: pd.DataFrame | None = None, segments: pd.DataFrame | None = None,
                      plans: pd.DataFrame | None = None) -> pd.DataFrame:
    """Join each video's stored segments into data/outputs/<campaign>/<video>.mp4 (cut or crossfade), then finish
    it: native audio kept or replaced, narration placed, music ducked under it, loudness normalised, subtitles
    (soft track plus .srt/.vtt), a poster and a contact sheet; last, Content Credentials signed into it (each
    segment's model, provider and job from `segments`, its prompt's hash from `plans`) and `<video>.c2pa.json`."""
    from video_pipeline.flow import provenance

    videos = {v.id: v for v in campaign.videos} if campaign is not None else {}
    spoken = {r.video_id: r for r in narration.itertuples()} if narration is not None and len(narration) else {}
    key = provenance.key_for(settings, campaign)
    facts = provenance.segment_facts(clips, segments, plans)
    label = provenance.label_text(campaign)

    def assemble(video_id: str, group: pd.DataFrame) -> dict:
        group = group.sort_values("segment_index")
        first = group.iloc[0]
        name = first["campaign"]
        width, height = frame_size(first["resolution"], first["aspect_ratio"])
        row = {"campaign": name, "video_id": video_id, "target_seconds": float(first["target_seconds"]),
               "segments": len(group), "models": sorted(set(group["model"])),
               "cost_usd": round(float(group["cost_usd"].fillna(0).sum()), 4)}
        missing = group[group["state"] != "stored"]
        if len(missing):
            reasons = "; ".join(f"segment {int(r.segment_index)}: {r.error}" for r in missing.itertuples())
            return {**row, "state": "failed", "error": f"{len(missing)} of {len(group)} segments missing ({reasons})"}
        out = settings.outputs_dir / name / f"{video_id}.mp4"
        spec = videos.get(video_id)
        try:
            def sound(native, duration: float, work: Path):
                return final_sound(sound_spec(duration, settings, campaign, spec, spoken.get(video_id)), work,
                                   native=native)[0]

            # the picture (transition windows, body copies) and the finished sound are made side by side
            concat([SegmentInput(Path(p), float(s)) for p, s in zip(group["clip_path"], group["seconds"])], out,
                   width, height, settings.x264_preset,
                   transition=spec.transition if spec else "cut",
                   transition_seconds=spec.transition_seconds if spec else 0.5,
                   trim_join_frames=spec.trim_join_frames if spec else 0, sound=sound)
            finished = finish_video(out, settings, campaign, spoken.get(video_id))
            finished["join_scores"] = join_scores(out, _join_times(group, spec))
            info = probe(out)
            if key is None:
                finished["credentials"] = provenance.off_record(label)
            else:   # the file's last write: whatever rewrites it later must sign it again
                manifest = provenance.video_manifest(
                    video_id, [facts[(video_id, int(i))] for i in group["segment_index"]], settings, campaign, spec,
                    spoken.get(video_id))
                finished["credentials"], finished["credentials_sidecar"] = provenance.sign_video(
                    out, manifest, key, label)
        except MediaError as exc:
            return {**row, "state": "failed", "error": str(exc)}
        narration_cost = float(spoken[video_id].cost_usd) if video_id in spoken else 0.0
        return {**row, **finished, "state": "assembled", "output_uri": out.resolve().as_uri(),
                "output_path": str(out), "duration_seconds": round(info.duration, 3), "width": info.width,
                "height": info.height, "video_codec": info.video_codec,
                "cost_usd": round(row["cost_usd"] + narration_cost, 4)}

    # the videos of a campaign side by side, up to the cores: most of a video's time is ffmpeg's, and the serial
    # parts of one (probing, measuring, signing) overlap the other's encoding. Every ffmpeg run of the step, in
    # every video, waits for one shared budget, so side by side they hold no more memory than one video may
    groups = list(clips.groupby("video_id", sort=False))
    budget = assembly_budget()
    with budgeted(budget):
        rows = side_by_side([partial(assemble, *item) for item in groups], budget.processes)
    return ASSEMBLED_OUTPUTS.rows(rows)


def sound_spec(duration: float, settings: Settings, campaign: Campaign | None, spec, spoken) -> MixSpec:
    """What a video's finished sound is made of: its clips' own sound (kept or not), the audio that drove its
    picture, its narration and its music."""
    from video_pipeline.spec.campaign import resolve_reference
    from video_pipeline.planning.planner import NARRATION_LEAD

    media_dir = campaign.media_dir if campaign is not None else None
    music = resolve_reference(spec.music, settings.data_dir, media_dir) if spec is not None and spec.music else None
    keep_native = campaign is None or campaign.defaults.native_audio == "keep"
    # a video generated to its `audio` (Seedance's @Audio, lip sync) carries that audio: the planner started
    # segment k at the track's second `start_seconds`, so the track lines up with the joined picture from 0 s
    driving = resolve_reference(spec.audio, settings.data_dir, media_dir) if spec is not None and spec.audio else None
    return MixSpec(duration=duration, narration=Path(spoken.audio_path) if spoken is not None else None,
                   narration_offset=NARRATION_LEAD, driving_audio=driving, music=music, keep_native=keep_native)


def finish_video(out: Path, settings: Settings, campaign: Campaign | None, spoken) -> dict:
    """Subtitles, the visible label, stills and the quality checks of one joined and mixed video; returns what the
    outputs table records about them."""
    from video_pipeline.media.measure import review
    from video_pipeline.media.subtitles import add_soft_subtitles, burn_subtitles, cues_from_timings, write_srt, write_vtt
    from video_pipeline.planning.planner import NARRATION_LEAD
    from video_pipeline.providers.tts import WordTiming

    result: dict = {"narration_seconds": float(spoken.duration_seconds) if spoken is not None else None}
    timings = [WordTiming(t["text"], t["start_seconds"] + NARRATION_LEAD, t["end_seconds"] + NARRATION_LEAD)
               for t in values(spoken.timings)] if spoken is not None else []
    style = campaign.defaults.subtitles if campaign is not None else "soft"
    if timings and style != "none":
        cues = cues_from_timings(timings)
        srt, vtt = write_srt(cues, out.with_suffix(".srt")), write_vtt(cues, out.with_suffix(".vtt"))
        with_subs = private_sibling(out, "subs")
        if style == "burned":
            burn_subtitles(out, srt, with_subs, preset=settings.x264_preset)
        else:
            add_soft_subtitles(out, srt, with_subs)
        os.replace(with_subs, out)
        result.update(subtitles_srt=str(srt), subtitles_vtt=str(vtt))
    label = campaign.provenance.label if campaign is not None else None
    if label is not None:    # a visible disclosure, before the stills so the poster shows it too
        from video_pipeline.media.subtitles import burn_label

        labelled = private_sibling(out, "label")
        burn_label(out, labelled, label.text, label.position, preset=settings.x264_preset)
        os.replace(labelled, out)
    # one decode of the finished file for every check: black stretches, silence, loudness, the contact sheet and
    # the poster
    checked = review(out, out.with_suffix(".contact.png"), black_seconds=0.5, silence_seconds=1.0,
                     poster_png=out.with_suffix(".poster.png"))
    result["black_runs"] = spans(checked.black_runs)
    if spoken is not None:
        window = (NARRATION_LEAD, NARRATION_LEAD + float(spoken.duration_seconds))
        result["silent_in_narration"] = spans(r for r in checked.silent_runs if r[0] < window[1] and r[1] > window[0])
    result["poster"] = str(checked.poster)
    result["contact_sheet"] = str(checked.contact_sheet)
    lufs = checked.loudness_lufs
    result["loudness_lufs"] = (round(lufs, 2) if lufs is not None and lufs == lufs and lufs > -70 else None)
    return result


def spans(runs) -> list[dict]:
    """(start, end) pairs as the tables' span records."""
    return [{"start_seconds": float(a), "end_seconds": float(b)} for a, b in runs]


def _join_times(group: pd.DataFrame, spec) -> list[float]:
    """Where each join falls in the finished video (the middle of a crossfade)."""
    overlap = 0.0
    if spec is not None:
        from video_pipeline.planning.planner import join_overlap

        overlap = join_overlap(spec)
    times, position = [], 0.0
    for seconds in list(group["seconds"])[:-1]:
        position += float(seconds) - overlap
        times.append(round(position + overlap / 2, 3))
    return times


def join_scores(video: Path, times: list[float]) -> list[dict]:
    """A discontinuity score per join: mean absolute luma change (0-255) between the frames either side of it,
    against the same measure one second earlier, so a score well above its baseline marks a visible jump."""
    import av
    import numpy as np

    def luma(at: float):
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            container.seek(max(int((at - 0.5) / stream.time_base), 0), stream=stream, backward=True)
            previous = None
            for frame in container.decode(stream):
                current = frame.to_ndarray(format="gray").astype(np.int16)
                if frame.time is not None and frame.time >= at - 0.5 / 24:   # join times are rounded to ms
                    return previous if previous is not None else current, current
                previous = current
        return None, None

    with av.open(str(video)) as container:   # the picture may start a frame late (B-frame delay): shift with it
        stream = container.streams.video[0]
        start = float(stream.start_time * stream.time_base) if stream.start_time else 0.0
    scores = []
    for t in (x + start for x in times):
        before, after = luma(t)
        base_before, base_after = luma(max(t - 1.0, 0.05))
        if before is None or base_before is None:
            continue
        scores.append({"at_seconds": round(t, 3), "score": round(float(np.abs(after - before).mean()), 2),
                       "baseline": round(float(np.abs(base_after - base_before).mean()), 2)})
    return scores
