"""Content Credentials (C2PA, issue 17): every finished video carries a signed manifest that says it is AI-generated,
by which models, from which clips; it reads back with c2pa's Reader (in this process and in a fresh interpreter
that knows nothing of the pipeline), the video still plays, one changed byte breaks it, and the asset check says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import assert_video, run_campaign_job, write
from video_pipeline.config import Settings, SettingsError
from video_pipeline.media.credentials import (
    COMPOSITE,
    TRAINED,
    CredentialsError,
    Ingredient,
    Manifest,
    check,
    make_chain,
    read_credentials,
    sign,
    signing_key,
    signing_notice,
    top_level_boxes,
)
from video_pipeline.media.probe import decodes, probe
from video_pipeline.media.render import ClipSpec, render_clip
from video_pipeline.spec.campaign import Campaign

SMALL = dict(width=320, height=180, preset="ultrafast")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Two small rendered clips with sound: the segments a manifest names, and a video to sign."""
    folder = tmp_path_factory.mktemp("clips")
    made = []
    for i in range(2):
        out = folder / f"clip-{i}.mp4"
        render_clip(ClipSpec(text=f"segment {i}", label=f"{i}", seconds=2, seed=f"c2pa-{i}", native_audio=True,
                             **SMALL), out)
        made.append(out)
    return made


def _manifest(clips: list[Path]) -> Manifest:
    ingredients = tuple(Ingredient(f"segment-{i}", f"segment {i}: model-{i}", path, TRAINED, f"model-{i}",
                                   {"segment_index": i, "model": f"model-{i}", "sha256": f"{i}" * 64,
                                    "provider_job_id": f"job-{i}"})
                        for i, path in enumerate(clips))
    return Manifest("video.mp4", ingredients, ("2 segment(s) joined by cuts",), {"campaign": "test"})


def _expected(n: int = 2) -> list[dict]:
    return [{"segment_index": i, "model": f"model-{i}", "sha256": f"{i}" * 64, "provider_job_id": f"job-{i}"}
            for i in range(n)]


def _signed_copy(clips: list[Path], folder: Path, settings: Settings) -> Path:
    video = folder / "video.mp4"
    video.write_bytes(clips[0].read_bytes())
    return sign(video, _manifest(clips), signing_key(settings))


def _flip_a_byte_of_the_picture(path: Path) -> None:
    """Change one byte in the middle of the media data (the mdat box), as a careless edit or an attacker would."""
    [(_, offset, size)] = [b for b in top_level_boxes(path) if b[0] == "mdat"]
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        byte = fh.read(1)
        fh.seek(offset + size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))


# --- signing and reading one file ------------------------------------------------------------------------------

def test_a_signed_video_reads_back_trusted_with_each_segment_its_model_and_still_plays(clips, tmp_path, settings):
    before = probe(clips[0])
    video = _signed_copy(clips, tmp_path, settings)
    key = signing_key(settings)
    creds = read_credentials(video, key.anchors)

    assert creds.state == "Trusted" and creds.failures == ()
    assert creds.source_type == COMPOSITE and creds.ai_generated
    assert creds.generator.startswith("video-pipeline ")
    assert [(i["model"], i["source_type"]) for i in creds.ingredients] == [("model-0", TRAINED), ("model-1", TRAINED)]
    assert [i["facts"]["provider_job_id"] for i in creds.ingredients] == ["job-0", "job-1"]
    assert creds.binding_ok and creds.binding.startswith("whole file")
    assert check(creds, _expected(), require_trust=True) == []
    after = probe(video)                                    # the same picture and sound, still decoding
    assert (after.duration, after.width, after.height, after.video_codec, after.has_audio) == \
        (before.duration, before.width, before.height, before.video_codec, before.has_audio)
    assert decodes(video)


def test_a_reader_that_knows_nothing_of_the_pipeline_sees_only_the_untrusted_development_signer(clips, tmp_path,
                                                                                                 settings):
    """A fresh interpreter that imports c2pa alone, with the SDK's default settings (no trust anchors)."""
    video = _signed_copy(clips, tmp_path, settings)
    code = ("import c2pa, json, sys\n"
            "r = c2pa.Reader(sys.argv[1])\n"
            "m = r.get_active_manifest()\n"
            "print(json.dumps({'state': r.get_validation_state(), 'results': r.get_validation_results(),\n"
            "                  'ingredients': [i['title'] for i in m['ingredients']],\n"
            "                  'signer': m['signature_info']['issuer']}))")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(video)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["state"] == "Valid"
    assert [f["code"] for f in seen["results"]["activeManifest"]["failure"]] == ["signingCredential.untrusted"]
    assert "assertion.bmffHash.match" in {s["code"] for s in seen["results"]["activeManifest"]["success"]}
    assert seen["ingredients"] == ["segment 0: model-0", "segment 1: model-1"]
    assert "UNTRUSTED" in seen["signer"]


def test_one_changed_byte_of_the_picture_breaks_the_binding(clips, tmp_path, settings):
    video = _signed_copy(clips, tmp_path, settings)
    _flip_a_byte_of_the_picture(video)
    creds = read_credentials(video, signing_key(settings).anchors)
    assert creds.state == "Invalid" and not creds.binding_ok
    assert any(f.startswith("assertion.bmffHash.mismatch") for f in creds.failures)
    problems = check(creds, _expected(), require_trust=True)
    assert any("hard binding broken" in p for p in problems), problems


def test_a_stream_copy_after_signing_drops_the_credentials_and_signing_again_restores_them(clips, tmp_path, settings):
    from video_pipeline.media.subtitles import add_soft_subtitles

    video = _signed_copy(clips, tmp_path, settings)
    srt = write(tmp_path / "cue.srt", "1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    remuxed = add_soft_subtitles(video, srt, tmp_path / "remuxed.mp4")      # ffmpeg, every stream copied
    key = signing_key(settings)
    assert check(read_credentials(remuxed, key.anchors), _expected(), require_trust=True) == [
        "no Content Credentials in the file (copied or re-encoded after signing, or never signed)"]
    sign(remuxed, _manifest(clips), key)
    assert check(read_credentials(remuxed, key.anchors), _expected(), require_trust=True) == []


def test_the_check_names_an_ingredient_the_ledger_does_not_know(clips, tmp_path, settings):
    video = _signed_copy(clips, tmp_path, settings)
    creds = read_credentials(video, signing_key(settings).anchors)
    ledger = _expected()
    ledger[1] = {**ledger[1], "sha256": "f" * 64}
    assert check(creds, ledger, require_trust=True) == [
        f"segment 1: ingredient sha256 '{'1' * 64}', the ledger says '{'f' * 64}'"]
    assert check(creds, _expected(3), require_trust=True)[:2] == [
        "2 segment ingredient(s), the ledger says 3 segment(s) made it", "segment 2: no ingredient"]


# --- credentials ---------------------------------------------------------------------------------------------

def test_the_development_chain_is_made_once_under_the_data_directory_and_says_it_is_untrusted(settings):
    from cryptography import x509

    first, second = signing_key(settings), signing_key(settings)
    folder = settings.data_dir / "credentials" / "c2pa-development"
    assert first.development and first.chain == second.chain and first.key == second.key
    assert (folder / "signer.pem").stat().st_mode & 0o077 == 0              # the key: owner only
    assert "UNTRUSTED DEVELOPMENT CREDENTIALS" in (folder / "README.txt").read_text()
    signer, ca = x509.load_pem_x509_certificates(first.chain.encode())
    assert "UNTRUSTED" in signer.subject.rfc4514_string() and ca.subject == signer.issuer
    assert (folder / "ca.pem").read_text() == first.anchors
    assert not signer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert signer.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert "**********" in repr(first) and "PRIVATE KEY" not in repr(first)


def _production_chain(folder: Path, name: str = "Example Newsroom signer") -> tuple[str, str, str]:
    """(chain PEM, key PEM, root PEM) of a P-384 CA that is not the pipeline's, like one a team buys; the root is
    also written to `folder/roots.pem`."""
    from cryptography.hazmat.primitives.asymmetric import ec

    root, chain, key = make_chain(name, "Example Root CA", curve=ec.SECP384R1(), days=30)
    (folder / "roots.pem").write_text(root)
    return chain, key, root


def test_credentials_from_the_environment_sign_with_them_and_the_named_roots_make_them_trusted(clips, tmp_path,
                                                                                               settings):
    chain, key_pem, _ = _production_chain(tmp_path)
    key_file = write(tmp_path / "signer.key", key_pem)
    env = {"VIDEO_PIPELINE_DATA_DIR": str(settings.data_dir), "VIDEO_PIPELINE_C2PA_CERT": chain,
           "VIDEO_PIPELINE_C2PA_KEY": str(key_file), "VIDEO_PIPELINE_C2PA_ALG": "ES384",
           "VIDEO_PIPELINE_C2PA_TRUST_ANCHORS": str(tmp_path / "roots.pem")}
    production = Settings.from_env(env)
    key = signing_key(production)
    assert not key.development and key.signer == "Example Newsroom signer" and key.algorithm == "es384"
    video = _signed_copy(clips, tmp_path, production)
    creds = read_credentials(video, key.anchors)
    assert (creds.state, creds.signer) == ("Trusted", "Example Newsroom signer")
    assert check(creds, _expected(), require_trust=True) == []
    assert not (settings.data_dir / "credentials").exists()          # no development chain was made
    assert signing_notice(production.with_overrides(mode="live")) is None


def test_credentials_that_cannot_sign_are_refused_naming_the_variable_never_the_key(tmp_path, settings):
    chain, key_pem, _ = _production_chain(tmp_path)
    other_chain, other_key, _ = _production_chain(tmp_path, "Someone else")
    base = {"VIDEO_PIPELINE_DATA_DIR": str(settings.data_dir)}
    cases = {
        "does not belong": {"VIDEO_PIPELINE_C2PA_CERT": chain, "VIDEO_PIPELINE_C2PA_KEY": other_key,
                            "VIDEO_PIPELINE_C2PA_ALG": "es384"},
        "the key is an EC key on secp384r1": {"VIDEO_PIPELINE_C2PA_CERT": chain, "VIDEO_PIPELINE_C2PA_KEY": key_pem},
        "expected an unencrypted PEM private key": {"VIDEO_PIPELINE_C2PA_CERT": chain, "VIDEO_PIPELINE_C2PA_KEY":
                                                    key_pem.replace("A", "B", 40)},
    }
    for words, env in cases.items():
        with pytest.raises(CredentialsError) as caught:
            signing_key(Settings.from_env({**base, **env}))
        assert words in str(caught.value)
        for secret in (key_pem, other_key):
            assert secret.splitlines()[1] not in str(caught.value)
    with pytest.raises(SettingsError, match="set both VIDEO_PIPELINE_C2PA_CERT and VIDEO_PIPELINE_C2PA_KEY") as caught:
        Settings.from_env({**base, "VIDEO_PIPELINE_C2PA_KEY": key_pem})
    assert key_pem.splitlines()[1] not in str(caught.value)


def test_live_mode_without_credentials_says_how_to_get_production_ones(settings):
    notice = signing_notice(settings.with_overrides(mode="live"))
    assert "UNTRUSTED development certificate" in notice and "VIDEO_PIPELINE_C2PA_CERT" in notice
    assert "docs/deployment.md" in notice
    assert signing_notice(settings) is None                          # local mode: the development chain is expected


# --- the campaign's choice ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "credentials", "label"), [
    ("", True, None),
    ("provenance: off", False, None),                                   # YAML 1.1 reads `off` as false
    ("provenance: on", True, None),
    ('{"provenance": "off"}', False, None),                            # JSON says it as a string
    ("provenance: {label: true}", True, ("AI-generated", "bottom-right")),
    ("provenance: {prompts: text, label: {text: Made with AI, position: top-left}}", True,
     ("Made with AI", "top-left")),
])
def test_a_campaign_turns_credentials_off_or_asks_for_a_visible_label(text, credentials, label):
    spec = yaml.safe_load("campaign: c\nvideos: [{id: v, shots: [{prompt: p}]}]\n")
    spec.update(yaml.safe_load(text) or {})
    provenance = Campaign.model_validate(spec).provenance
    assert provenance.credentials is credentials
    assert (None if provenance.label is None else (provenance.label.text, provenance.label.position)) == label


def test_the_visible_label_is_drawn_into_the_corner_it_names(clips, tmp_path):
    import av
    import numpy as np

    from video_pipeline.media.subtitles import burn_label

    def corners(path: Path):
        with av.open(str(path)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="gray").astype(int)
        h, w = frame.shape
        return frame[h * 3 // 4:, w * 3 // 5:], frame[: h // 4, : w * 2 // 5]

    out = burn_label(clips[0], tmp_path / "labelled.mp4", "AI-generated", "bottom-right", preset="ultrafast")
    (before_br, before_tl), (after_br, after_tl) = corners(clips[0]), corners(out)
    assert np.abs(after_br - before_br).mean() > 8         # the box and its text
    assert np.abs(after_tl - before_tl).mean() < 3         # the rest untouched (re-encoding noise only)
    assert abs(probe(out).duration - probe(clips[0]).duration) < 0.05 and probe(out).has_audio


# --- the command ---------------------------------------------------------------------------------------------

def test_the_provenance_command_prints_and_verifies_any_mp4(clips, tmp_path, settings, capsys):
    from video_pipeline.cli.main import main

    video = _signed_copy(clips, tmp_path, settings)

    def run(*args) -> tuple[int, str]:
        code = main(["provenance", *args])
        return code, capsys.readouterr().out

    code, shown = run(str(video))
    assert code == 0
    assert "Content Credentials Valid" in shown and "UNTRUSTED development credentials" in shown
    assert "segment 1: model-1 (model-1, trainedAlgorithmicMedia)" in shown
    code, as_json = run(str(video), "--json")
    payload = json.loads(as_json)
    assert code == 0 and payload["ok"] is True and payload["credentials"]["digital_source_type"] == COMPOSITE
    code, unsigned = run(str(clips[1]), "--json")
    assert code == 3 and json.loads(unsigned)["credentials"]["state"] is None
    _flip_a_byte_of_the_picture(video)
    code, broken = run(str(video))
    assert code == 3 and "does NOT verify" in broken and "bmffHash.mismatch" in broken


# --- through the pipeline --------------------------------------------------------------------------------------

def _credential_checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()
            if e.check_name == "content_credentials_valid"}


def _run_check_alone(instance, campaign_id: str):
    """The content_credentials_valid check alone (campaign_job's step for it), nothing assembled again."""
    from definitions import build_definitions

    return build_definitions().resolve_job_def("campaign_job").execute_in_process(
        partition_key=campaign_id, instance=instance, raise_on_error=False,
        op_selection=["assembled_outputs_content_credentials_valid"])


@pytest.mark.slow
def test_every_output_of_a_narrated_campaign_is_signed_checked_reported_and_a_changed_byte_fails_the_check(
        instance, settings, data_dir):
    result = run_campaign_job(instance, settings, data_dir / "samples" / "narrated-spot.yaml")
    assert result.success
    assert _credential_checks(result) == {"content_credentials_valid": True}
    [video] = result.output_for_node("assembled_outputs").itertuples()
    clips = pd.read_parquet(settings.tables_dir / "stored_clips" / "narrated-spot.parquet")
    jobs = pd.read_parquet(settings.tables_dir / "generated_segments" / "narrated-spot.parquet")
    creds = read_credentials(Path(video.output_path))                       # what any viewer sees
    assert creds.state == "Valid" and [f.split(":")[0] for f in creds.failures] == ["signingCredential.untrusted"]
    segments = [i for i in creds.ingredients if i["facts"]["label"].startswith("segment-")]
    assert [(i["facts"]["sha256"], i["model"], i["source_type"]) for i in segments] == [
        (r.sha256, r.model, TRAINED) for r in clips.sort_values("segment_index").itertuples()]
    assert [i["facts"]["provider_job_id"] for i in segments] == list(jobs.sort_values("segment_index")
                                                                     ["provider_job_id"])
    assert all(len(i["facts"]["prompt_sha256"]) == 64 and "prompt" not in i["facts"] for i in segments)
    others = {i["facts"]["label"]: i for i in creds.ingredients if i not in segments}
    assert others["narration"]["source_type"] == "algorithmicMedia" and others["narration"]["model"] == "espeak-ng"
    assert set(others) == {"narration", "music"}
    assert_video(video.output_path, video.target_seconds)
    sidecar = json.loads(Path(video.credentials_sidecar).read_text())
    assert sidecar["credentials"]["ingredients"] == json.loads(json.dumps(list(creds.ingredients)))
    report = (settings.outputs_dir / "narrated-spot" / "report.html").read_text()
    assert "Content Credentials" in report and "compositeWithTrainedAlgorithmicMedia" in report
    assert f"segment 0: {clips.sort_values('segment_index').iloc[0].model}" in report

    _flip_a_byte_of_the_picture(Path(video.output_path))
    again = _run_check_alone(instance, "narrated-spot")
    [evaluation] = again.get_asset_check_evaluations()
    assert evaluation.passed is False
    problems = evaluation.metadata["problems"].value
    assert list(problems) == ["spot"] and any("bmffHash.mismatch" in p for p in problems["spot"])


@pytest.mark.slow
def test_a_campaign_with_provenance_off_has_no_manifest_and_the_report_says_so(instance, settings, data_dir):
    spec = write(data_dir / "plain.yaml", """
campaign: plain
provenance: off
defaults: {quality_tier: social}
videos:
  - {id: one, target_seconds: 4, shots: [{prompt: "A kite over dunes"}]}
""")
    result = run_campaign_job(instance, settings, spec)
    assert result.success and _credential_checks(result) == {"content_credentials_valid": True}
    [video] = result.output_for_node("assembled_outputs").itertuples()
    assert video.credentials["state"] == "off" and video.credentials_sidecar is None
    assert read_credentials(Path(video.output_path)).state is None
    assert "Content Credentials</b>: off" in (settings.outputs_dir / "plain" / "report.html").read_text()


@pytest.mark.slow
def test_fake_mode_outputs_name_the_provider_jobs_the_fakes_ran_and_a_label_is_drawn(instance, settings, data_dir,
                                                                                      monkeypatch):
    from tests.support.services import fleet_on_free_ports

    spec = write(data_dir / "faked.yaml", """
campaign: faked
provenance: {label: {text: AI-generated, position: top-right}}
defaults: {quality_tier: social, subtitles: none}
videos:
  - {id: two, target_seconds: 8, shots: [{prompt: "A cyclist crosses a bridge"}, {prompt: "Waves on black sand"}]}
""")
    fleet, base = fleet_on_free_ports(latency=0.3)
    for name, value in {"MODE": "fake", "FAKES_PORT": str(base), "TIME_SCALE": "0.01"}.items():
        monkeypatch.setenv(f"VIDEO_PIPELINE_{name}", value)
    try:
        result = run_campaign_job(instance, Settings.from_env(), spec)
    finally:
        fleet.stop()
    assert result.success and _credential_checks(result) == {"content_credentials_valid": True}
    [video] = result.output_for_node("assembled_outputs").itertuples()
    jobs = pd.read_parquet(settings.tables_dir / "generated_segments" / "faked.parquet").sort_values("segment_index")
    creds = read_credentials(Path(video.output_path), signing_key(settings).anchors)
    assert creds.state == "Trusted"
    assert [(i["facts"]["provider"], i["facts"]["provider_job_id"]) for i in creds.ingredients] == [
        (r.provider, r.provider_job_id) for r in jobs.itertuples()]
    assert all(r.provider != "local" for r in jobs.itertuples())
    assert video.credentials["label"] == "AI-generated (top-right)"
    assert any("visible label 'AI-generated' drawn top-right" in a.get("description", "")
               for m in creds.store["manifests"].values() for s in m["assertions"]
               if s["label"].startswith("c2pa.actions") for a in s["data"]["actions"])

