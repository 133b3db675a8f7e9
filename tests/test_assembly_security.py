"""Media we are handed is read as local media only: a playlist posing as a clip or a soundtrack is refused before
ffmpeg follows it anywhere, and no ffmpeg or other program runs through a shell."""

from __future__ import annotations

import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from video_pipeline.config import PROJECT_ROOT
from video_pipeline.errors import MediaError
from video_pipeline.media.assemble import SegmentInput, concat
from video_pipeline.media.ffmpeg import ffmpeg_binary, run_args
from video_pipeline.media.mix import MixSpec, mix
from video_pipeline.media.probe import probe
from video_pipeline.media.render import ClipSpec, render_clip


@pytest.fixture
def web_server():
    """A loopback HTTP server that records every path requested of it."""
    requests: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            requests.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return render_clip(ClipSpec(text="A real clip", label="ok", seconds=1, width=160, height=90, preset="ultrafast"),
                       tmp_path_factory.mktemp("real") / "real.mp4")


def _hostile(folder: Path, url: str, real: Path) -> list[Path]:
    """Files a provider or a campaign could hand us under media names: playlists that point at the web, at a file
    outside the campaign, or at another clip beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    secret = folder.parent / "elsewhere" / "secret.mp4"
    secret.parent.mkdir(exist_ok=True)
    shutil.copy(real, secret)
    shutil.copy(real, folder / "another-campaigns-clip.mp4")
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{url}/segment.ts\n#EXT-X-ENDLIST\n"
    files = {"playlist.m3u8": playlist, "playlist.mp4": playlist,
             "local-playlist.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{secret}\n#EXT-X-ENDLIST\n",
             "ffconcat.mp4": "ffconcat version 1.0\nfile another-campaigns-clip.mp4\n",
             "ffconcat-outside.mp4": "ffconcat version 1.0\nfile ../elsewhere/secret.mp4\n",
             "ffconcat-web.m4a": f"ffconcat version 1.0\nfile {url}/track.m4a\n"}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in files]


def test_a_playlist_posing_as_a_clip_is_refused_and_fetches_nothing(clip, tmp_path, web_server):
    url, requests = web_server
    for hostile in _hostile(tmp_path / "clips", url, clip):
        with pytest.raises(MediaError, match=hostile.name):
            probe(hostile)
        for transition in ("cut", "crossfade"):
            with pytest.raises(MediaError):
                concat([SegmentInput(clip, 1.0), SegmentInput(hostile, 1.0)], tmp_path / "out.mp4", 160, 90,
                       "ultrafast", transition=transition)
    assert requests == [] and not (tmp_path / "out.mp4").exists()


def test_a_playlist_posing_as_music_or_narration_is_refused_by_ffmpeg_itself(clip, tmp_path, web_server):
    url, requests = web_server
    for hostile in _hostile(tmp_path / "sounds", url, clip):
        for spec in (MixSpec(duration=1.0, music=hostile), MixSpec(duration=1.0, narration=hostile)):
            with pytest.raises(MediaError, match="whitelist|Invalid"):
                mix(clip, tmp_path / "mixed.mp4", spec)
        # the same refusal for any ffmpeg the pipeline runs, whatever demuxer is asked for by name
        with pytest.raises(MediaError):
            run_args([ffmpeg_binary(), "-f", "hls", "-i", str(hostile), "-f", "null", "-"], what="forced hls")
    assert requests == [] and not (tmp_path / "mixed.mp4").exists()


def test_no_program_is_started_through_a_shell():
    shell = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|create_subprocess_shell|commands\.getoutput")
    offenders = [f"{path.relative_to(PROJECT_ROOT)}:{n}" for path in (PROJECT_ROOT / "video_pipeline").rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if shell.search(line)]
    assert offenders == []
