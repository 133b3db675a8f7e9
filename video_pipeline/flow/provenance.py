"""Content Credentials from the stage tables: what each finished video's manifest says (its segments as the ledger
recorded them in stored_clips and generated_segments, the prompts of routed_job_plans, the narration, music and
assembly steps), signing it as assembly's last step, and the asset check that reads every output back and compares
its ingredients with the clips the ledger says were used."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from video_pipeline.config import Settings
from video_pipeline.media.credentials import (
    ALGORITHMIC,
    TRAINED,
    Credentials,
    Ingredient,
    Manifest,
    SigningKey,
    check,
    fingerprint,
    read_credentials,
    sign,
    signing_key,
    write_sidecar,
)
from video_pipeline.spec.campaign import Campaign, resolve_reference
from video_pipeline.storage.store import file_sha256
from video_pipeline.tables import records

#: narration providers whose voice is not a trained model, by the name they record: espeak-ng (the offline voice,
#: provider "local") is a formant synthesizer
RULE_BASED_VOICES = {"local": "espeak-ng", "espeak": "espeak-ng"}


def key_for(settings: Settings, campaign: Campaign | None) -> SigningKey | None:
    """The key this campaign's videos are signed with; None when the campaign says `provenance: off`."""
    if campaign is not None and not campaign.provenance.credentials:
        return None
    return signing_key(settings)


def segment_facts(clips: pd.DataFrame, segments: pd.DataFrame | None = None,
                  plans: pd.DataFrame | None = None) -> dict[tuple[str, int], dict]:
    """(video, segment) → what the ledger recorded of the clip that fills it: model, provider, provider job id,
    job key, the clip's SHA-256 and path, and the prompt sent."""
    def by_segment(frame: pd.DataFrame | None) -> dict[tuple[str, int], dict]:
        if frame is None or frame.empty:
            return {}
        return {(r["video_id"], int(r["segment_index"])): r for r in records(frame)}

    jobs, prompts = by_segment(segments), by_segment(plans)
    facts = {}
    for (video_id, index), clip in by_segment(clips).items():
        job, plan = jobs.get((video_id, index), {}), prompts.get((video_id, index), {})
        facts[(video_id, index)] = {
            "segment_index": index, "model": clip.get("model"), "provider": job.get("provider"),
            "provider_job_id": job.get("provider_job_id"), "job_key": clip.get("job_key"),
            "sha256": clip.get("sha256"), "path": clip.get("clip_path"), "prompt": plan.get("prompt"),
        }
    return facts


def video_manifest(video_id: str, facts: list[dict], settings: Settings, campaign: Campaign | None, spec,
                   spoken) -> Manifest:
    """The manifest of one finished video: its segments, narration, music and driving audio as ingredients, each
    assembly step as an edit, the campaign's own facts."""
    with_text = campaign is not None and campaign.provenance.prompts == "text"
    ingredients = []
    for f in sorted(facts, key=lambda f: f["segment_index"]):
        said = {k: f[k] for k in ("segment_index", "model", "provider", "provider_job_id", "job_key", "sha256")}
        if f.get("prompt"):
            said["prompt_sha256"] = fingerprint(f["prompt"])
            if with_text:
                said["prompt"] = f["prompt"]
        where = f" on {f['provider']}" if f.get("provider") else ""
        ingredients.append(Ingredient(f"segment-{f['segment_index']}", f"segment {f['segment_index']}: {f['model']}"
                                      f"{where}", Path(f["path"]), TRAINED, f["model"], said))
    edits = []
    if spec is not None:
        joins = (f"{len(facts)} segments joined with {spec.transition_seconds:g} s crossfades"
                 if spec.transition == "crossfade" and len(facts) > 1 else f"{len(facts)} segment(s) joined by cuts")
        trim = f", {spec.trim_join_frames} frame(s) trimmed at each join" if spec.trim_join_frames else ""
        edits.append(joins + trim + " (segments normalised to the output size, 24 fps, where they differed)")
    if spoken is not None:
        provider = str(spoken.provider)
        voice = RULE_BASED_VOICES.get(provider, provider)
        ingredients.append(Ingredient(
            "narration", f"narration: {voice} voice {spoken.voice}, placed at 0.5 s", Path(spoken.audio_path),
            ALGORITHMIC if provider in RULE_BASED_VOICES else TRAINED, voice,
            {"provider": provider, "voice": spoken.voice, "sha256": file_sha256(Path(spoken.audio_path))}))
    for name, ref, words in (("audio", spec.audio if spec else None, "driving audio, laid from 0 s"),
                             ("music", spec.music if spec else None, "music, ducked under the narration")):
        if ref:
            path = resolve_reference(ref, settings.data_dir, campaign.media_dir if campaign is not None else None)
            ingredients.append(Ingredient(name, f"{words}: {Path(ref).name}", path, None, None,
                                          {"file": Path(ref).name, "sha256": file_sha256(path)}))
    native = campaign is None or campaign.defaults.native_audio == "keep"
    edits.append(("generated sound kept" if native else "generated sound replaced")
                 + ", loudness normalised to -14 LUFS (two-pass loudnorm)")
    style = campaign.defaults.subtitles if campaign is not None else "soft"
    if spoken is not None and style != "none":
        edits.append("subtitles from the narration timings " + ("burned into the picture" if style == "burned"
                                                                  else "muxed as a soft track"))
    label = campaign.provenance.label if campaign is not None else None
    if label is not None:
        edits.append(f"visible label '{label.text}' drawn {label.position}")
    facts_of_video = {"campaign": campaign.campaign if campaign else None, "video_id": video_id,
                      "spec_sha256": campaign.source.sha256 if campaign else None,
                      "target_seconds": spec.target_seconds if spec else None,
                      "models": sorted({f["model"] for f in facts if f.get("model")})}
    return Manifest(f"{video_id}.mp4", tuple(ingredients), tuple(edits), facts_of_video)


def sign_video(out: Path, manifest: Manifest, key: SigningKey, label: str | None = None) -> tuple[dict, str]:
    """Sign the finished file (its last write), read it back, write `<video>.c2pa.json` beside it; returns the
    outputs table's `credentials` record and the sidecar's path."""
    sign(out, manifest, key)
    # read as any viewer would: the development CA is trusted by the check, not by what the file's facts say
    creds = read_credentials(out, None if key.development else key.anchors)
    return credential_record(creds, key.development, label), str(write_sidecar(out, creds))


def credential_record(creds: Credentials, development: bool, label: str | None = None) -> dict:
    return {"state": "signed" if creds.state else "unsigned", "validation": creds.state, "signer": creds.signer,
            "development": development, "generator": creds.generator, "source_type": creds.source_type,
            "ingredients": [{"title": i["title"], "model": i["model"], "source_type": i["source_type"]}
                            for i in creds.ingredients], "label": label}


def off_record(label: str | None) -> dict:
    return {"state": "off", "validation": None, "signer": None, "development": None, "generator": None,
            "source_type": None, "ingredients": [], "label": label}


def verify_outputs(outputs: pd.DataFrame, clips: pd.DataFrame, segments: pd.DataFrame | None,
                   settings: Settings) -> dict[str, list[str]]:
    """video → what is wrong with its credentials (an empty list when they validate, trusted where a trust anchor
    is known, bind the whole file, and list the segments the ledger recorded). Videos whose campaign turned
    credentials off and videos that were not assembled are left out."""
    facts = segment_facts(clips, segments)
    key = None
    found: dict[str, list[str]] = {}
    for row in records(outputs):
        record = row.get("credentials") or {}
        if row.get("state") != "assembled" or record.get("state") == "off":
            continue
        key = key or signing_key(settings)
        path = Path(row["output_path"])
        if not path.is_file():
            found[row["video_id"]] = [f"{path.name}: no such file on this machine"]
            continue
        expected = [{k: f[k] for k in ("segment_index", "model", "sha256", "provider_job_id")}
                    for (video, _), f in facts.items() if video == row["video_id"]]
        found[row["video_id"]] = check(read_credentials(path, key.anchors), expected,
                                       require_trust=bool(key.anchors))
    return found


def label_text(campaign: Campaign | None) -> str | None:
    label = campaign.provenance.label if campaign is not None else None
    return f"{label.text} ({label.position})" if label is not None else None
