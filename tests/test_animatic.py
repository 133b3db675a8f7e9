"""Offline, every video is an animatic a director can judge: a whole shot card per segment (its video and shot, the
length, the model, the camera move; the prompt, the style on its own line) over the reference image or a quiet
plate, chained segments continuing from the previous picture without its words, a soft bed instead of a tone; and
every sample's finished videos land within ±0.5 LU of −14 LUFS."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from tests.support.pipeline import ephemeral_instance, output, run_campaign_job
from video_pipeline.config import PROJECT_ROOT
from video_pipeline.media.measure import integrated_loudness
from video_pipeline.media.render import CLEAN_TAIL, ClipSpec, extract_last_frame, render_clip, shot_card

pytestmark = pytest.mark.slow

W, H = 640, 360
SAMPLES = sorted(p.name for p in (PROJECT_ROOT / "data" / "samples").iterdir() if p.is_file())


def frame_at(video: Path, seconds: float) -> np.ndarray:
    """The RGB frame shown at `seconds` (the last one before it)."""
    with av.open(str(video)) as box:
        stream = box.streams.video[0]
        box.seek(int(max(seconds - 1, 0) / stream.time_base), stream=stream)
        shown = None
        for frame in box.decode(stream):
            if frame.time > seconds:
                break
            shown = frame
    return shown.to_ndarray(format="rgb24")


def white_pixels(picture: np.ndarray) -> int:
    """Pixels of the cards' white letters (the plates and the sample pictures hold none)."""
    return int(np.all(picture > 225, axis=2).sum())


def tone_share(video: Path) -> float:
    """The largest share of the sound's energy within ±2 Hz of one frequency (a steady tone is near 1; voices,
    music and noise spread theirs)."""
    with av.open(str(video)) as box:
        samples = np.concatenate([f.to_ndarray().mean(axis=0) for f in box.decode(box.streams.audio[0])])
    spectrum = np.abs(np.fft.rfft(samples)) ** 2
    hertz = len(samples) / 48000                       # bins per Hz
    window = np.convolve(spectrum, np.ones(max(1, int(4 * hertz))), mode="same")
    return float(window.max() / spectrum.sum())


def test_a_chained_segment_continues_from_a_clean_last_frame_without_ghost_text(tmp_path):
    first = render_clip(ClipSpec(
        text="A hiker walks a forest trail toward a ridge (continuous shot, part 1 of 2) Style: overcast morning, "
             "muted greens, 35mm lens, slow dolly", label="veo-3-1 | trail 1/2", seconds=3, width=W, height=H,
        seed="one", native_audio=True, preset="ultrafast"), tmp_path / "first.mp4")
    last = extract_last_frame(first, tmp_path / "last.png")
    second = render_clip(ClipSpec(
        text="The same hiker reaches the ridge (continuous shot, part 2 of 2) Style: overcast morning",
        label="veo-3-1 | trail 2/2", seconds=3, width=W, height=H, seed="two", image=last, preset="ultrafast"),
        tmp_path / "second.mp4")
    with av.open(str(last)) as image:
        seed_picture = next(image.decode(video=0)).to_ndarray(format="rgb24")
    card_one, card_two = frame_at(first, 1.5), frame_at(second, 1.5)
    assert white_pixels(card_one) > 200 and white_pixels(card_two) > 200     # each segment shows its card
    assert white_pixels(seed_picture) < 20                                   # the next one starts from no words
    assert white_pixels(card_two) < white_pixels(card_one) * 1.6, "the second card carries a ghost of the first"
    # the second segment starts from the first one's picture: continuity, not a new plate
    tail = frame_at(second, 3 - CLEAN_TAIL / 2).astype(float)
    assert np.abs(tail - seed_picture.astype(float)).mean() < 40


def test_the_shot_card_reads_the_segment_and_the_camera_move_from_its_words():
    card = shot_card("Close-up: coffee pours over ice, slow motion (continuous shot, part 2 of 3) Style: warm light",
                     "kling-2-5-turbo | teaser 2/3", 6)
    assert card.heading == "teaser · shot 2 of 3"
    assert card.detail == "6 s · kling-2-5-turbo · push in · part 2 of 3"
    assert (card.prompt, card.style) == ("Close-up: coffee pours over ice, slow motion", "warm light")
    assert shot_card("Drone shot over waves", "x", 4).move == "pan right"
    assert shot_card("The camera pulls back to reveal the city", "x", 4).move == "pull back"
    assert shot_card("A quiet room", "fake", 4).heading == "fake"


@pytest.fixture(scope="module")
def sample_outputs(tmp_path_factory) -> dict[str, list[Path]]:
    """Every sample campaign run through Dagster once, offline: its finished videos by sample file."""
    from tests.conftest import FAST_ENV
    from video_pipeline.config import Settings

    root = tmp_path_factory.mktemp("samples")
    import shutil

    data = root / "data"
    shutil.copytree(PROJECT_ROOT / "data" / "samples", data / "samples")
    shutil.copy(PROJECT_ROOT / "data" / "catalog.yaml", data / "catalog.yaml")
    settings = Settings.from_env({k: v for k, v in FAST_ENV.items()}, data_dir=str(data))
    videos = {}
    with ephemeral_instance() as instance:
        for name in SAMPLES:
            result = run_campaign_job(instance, settings, data / "samples" / name)
            frame = output(result, "assembled_outputs")
            assert set(frame["state"]) == {"assembled"}, (name, frame[["video_id", "error"]].to_dict("records"))
            videos[name] = [Path(p) for p in frame["output_path"]]
    return videos


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_video_is_at_minus_14_lufs_within_half_a_lu_with_no_steady_tone(sample, sample_outputs):
    for video in sample_outputs[sample]:
        loudness, _ = integrated_loudness(video)
        assert abs(loudness + 14) <= 0.5, f"{video.name}: {loudness:.2f} LUFS"
        assert tone_share(video) < 0.25, f"{video.name}: its sound is a steady tone"


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_sample_video_opens_on_a_shot_card(sample, sample_outputs):
    for video in sample_outputs[sample]:
        picture = frame_at(video, 1.5)                     # inside the first segment (each lasts 4 s or more)
        header = picture[: picture.shape[0] // 20]
        assert header.mean() < 110, f"{video.name}: no card's header bar at 1.5s"
        assert white_pixels(header) > 50, f"{video.name}: no heading in the card at 1.5s"
