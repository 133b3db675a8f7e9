"""Assembly: normalise segments to one spec, then join them.

Cuts: the concat demuxer stream-copies every segment. Crossfades: only each join's transition window is
re-encoded (xfade over the tail of one clip and the head of the next, each widened to the nearest IDR frame); the
bodies between the windows are stream-copied at their IDR frames, and the sound (acrossfade) is mixed on its own
and muxed with the copied picture. Segments are never decoded into Python: PyAV only reads packet headers.

The picture work (windows, body copies) and the sound (the clips' own, or the finished mix a caller makes from
it) run side by side, each ffmpeg run within a memory budget by estimate (`video_pipeline.media.ffmpeg.Budget`);
the last run muxes both by stream copy.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from video_pipeline.atomic import temp_prefix
from video_pipeline.errors import MediaError
from video_pipeline.media.ffmpeg import (Budget, budgeted, current_budget, ffmpeg_binary, run_args, run_graph,
                                         side_by_side)
from video_pipeline.media.mix import encode
from video_pipeline.media.probe import MediaInfo, open_media, probe
from video_pipeline.media.render import AUDIO_RATE, FPS, h264_options

FRAME = 1 / FPS
CRF = 20
_SOUND_AAC = {"acodec": "aac", "audio_bitrate": "128k", "ar": AUDIO_RATE, "ac": 2}
# FLAC in MP4 is still "experimental" to ffmpeg 5 (Debian 12's); the static ffmpeg 9 needs no flag
_SOUND_LOSSLESS = {"acodec": "flac", "ar": AUDIO_RATE, "ac": 2, "strict": "experimental"}
#: estimated peak memory (MB of RSS) of the assembly's ffmpeg runs. An encode (the transition windows: a decoder
#: and x264; a normalised clip) at 720p measured 153-169 MB, and scales with the picture's pixels; a stream copy
#: (the final mux) about 62 MB
ENCODE_BASE_MB, ENCODE_720P_MB, COPY_MB = 50.0, 115.0, 65.0
#: what each transition window adds to the run that encodes them all (at 720p: 157 MB for 11 windows, 172 MB for 79)
WINDOW_MB = 0.1
#: transition windows encoded in one ffmpeg run: its filter graph is one argument, which Linux bounds at 128 KiB
#: (a window writes about 130 bytes of it: 128 windows, 17 KiB)
WINDOWS_AT_ONCE = 128
#: ffmpeg's summary (at -loglevel verbose) of the first input's video stream: the frames it decoded to
_DECODED = re.compile(r"Input stream #0:0 \(video\): \d+ packets read \([^)]*\); (\d+) frames decoded")
#: clips cut by stream copy in one ffmpeg run, and what each adds to its memory (measured: 12 clips 67 MB, 80 clips
#: 120 MB at 720p)
SPLITS_AT_ONCE, SPLIT_MB = 16, 1.0
#: what the ffmpeg runs of an assembly hold at once, by those estimates, when its caller gave no budget: the
#: windows of a 720p edit beside the mix of up to 24 clips' sound (mix.SOUND_*_MB). A 10-minute edit's mix of 80
#: clips (about 200 MB) never runs beside its windows, and the windows start first (`_chains`), so that edit's
#: whole process tree stays under 300 MB (BENCHMARKS.md, Assembly C)
ASSEMBLY_MEMORY_MB = 280.0

#: `sound(native, duration, work)`: the finished sound of a join, made from `native` (the clips' own sound, cut or
#: crossfaded, an ffmpeg-python stream of `duration` seconds) with the folder `work` for its files, and handed
#: back as a stream for `mix.encode` (as `mix.final_sound` hands it)
SoundMaker = Callable[[object, float, Path], object]


def encode_mb(width: int, height: int) -> float:
    """The estimated peak memory of an x264 encode at width x height (see ENCODE_*_MB)."""
    return ENCODE_BASE_MB + ENCODE_720P_MB * width * height / (1280 * 720)


def assembly_budget() -> Budget:
    """The budget an assembly uses when its caller set none: ASSEMBLY_MEMORY_MB, a process per core."""
    return Budget(ASSEMBLY_MEMORY_MB, len(os.sched_getaffinity(0)))


@dataclass(frozen=True)
class SegmentInput:
    path: Path
    seconds: float   # how much of the clip the finished video uses (from its start)


def _fits(info: MediaInfo, width: int, height: int) -> bool:
    return (info.video_codec == "h264" and info.pixel_format == "yuv420p" and info.width == width
            and info.height == height and info.fps is not None and abs(info.fps - FPS) < 0.01
            and info.audio_codec == "aac")


def needs_normalising(info: MediaInfo, seconds: float, width: int, height: int) -> bool:
    """True unless the clip already matches the output spec and length, so it can be stream-copied."""
    return not (_fits(info, width, height) and abs(info.duration - seconds) <= FRAME)


def normalise(src: Path, dst: Path, seconds: float, width: int, height: int, preset: str,
              skip_seconds: float = 0.0, keyframes: tuple[float, ...] = ()) -> Path:
    """Trim to `seconds` (after skipping `skip_seconds`), scale and pad to width x height, 24 fps, yuv420p,
    AAC stereo (silence if none); IDR frames at `keyframes` (seconds of the output)."""
    info = probe(src)
    clip = ffmpeg.input(str(src), ss=f"{skip_seconds:.3f}") if skip_seconds else ffmpeg.input(str(src))
    picture = (clip.video.filter("scale", width, height, force_original_aspect_ratio="decrease")
               .filter("pad", width, height, "(ow-iw)/2", "(oh-ih)/2", color="black")
               .filter("setsar", 1).filter("fps", FPS).filter("format", "yuv420p")
               .filter("tpad", stop=-1, stop_mode="clone"))   # a clip a few frames short holds its last frame
    if info.has_audio:
        sound = clip.audio
    else:
        sound = ffmpeg.input(f"anullsrc=r={AUDIO_RATE}:cl=stereo", f="lavfi").audio
    sound = sound.filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo").filter("apad")
    stream = ffmpeg.output(picture, sound, str(dst), t=f"{seconds:.3f}", **h264_options(preset, CRF, keyframes),
                           acodec="aac", audio_bitrate="128k", ar=AUDIO_RATE, ac=2, movflags="+faststart")
    run_graph(stream, what=f"normalise {src.name}", memory_mb=encode_mb(width, height))
    return dst


def concat(segments: list[SegmentInput], out: Path, width: int, height: int, preset: str = "veryfast",
           transition: str = "cut", transition_seconds: float = 0.5, trim_join_frames: int = 0,
           intermediate: bool = False, sound: SoundMaker | None = None) -> Path:
    """Join segments in order into `out` (written atomically): cuts by stream copy where the inputs already match,
    crossfades by re-encoding only the transition windows; `trim_join_frames` drops that many frames on each
    side of every join. Each segment's `seconds` includes its share of the overlap the planner added for the joins.
    `sound`: makes the finished sound from the clips' own (see SoundMaker). With transition windows to encode, it
    is made and encoded beside them and stream-copied into `out`; otherwise it is encoded in the one run that
    copies the picture. Without it the clips' own sound goes into `out`: copied for cuts, re-encoded for
    crossfades (AAC, or lossless FLAC when `intermediate`: the sound will be mixed again)."""
    with budgeted(current_budget() or assembly_budget()):
        return _concat(segments, out, width, height, preset, transition, transition_seconds, trim_join_frames,
                       intermediate, sound)


def _concat(segments: list[SegmentInput], out: Path, width: int, height: int, preset: str, transition: str,
            transition_seconds: float, trim_join_frames: int, intermediate: bool, sound: SoundMaker | None) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    trim = trim_join_frames * FRAME
    crossfade = transition == "crossfade" and len(segments) > 1
    fade = max(1, round(transition_seconds * FPS)) if crossfade else 0
    with tempfile.TemporaryDirectory(prefix=temp_prefix("vp-join-"), dir=out.parent) as tmp:
        parts: list[Path] = []
        lengths: list[float] = []
        for i, seg in enumerate(segments):
            head = trim if i > 0 else 0.0
            tail = trim if i < len(segments) - 1 else 0.0
            length = seg.seconds - head - tail
            info = probe(seg.path)
            # a crossfade cuts a longer clip at an IDR frame and re-encodes the rest of its window
            usable = (_fits(info, width, height) and info.duration >= length - FRAME / 2 if crossfade
                      else not needs_normalising(info, seg.seconds, width, height))
            if head or tail or not usable:
                frames = round(length * FPS)
                keys = (fade * FRAME, (frames - fade) * FRAME) if crossfade else ()
                parts.append(normalise(seg.path, Path(tmp) / f"part-{i:04d}.mp4", length, width, height, preset,
                                       skip_seconds=head, keyframes=keys))
            else:
                parts.append(seg.path)
            lengths.append(length)
        partial = Path(tmp) / "joined.mp4"
        if crossfade:
            frames = [round(n * FPS) for n in lengths]
            picture = _CrossfadePicture(parts, frames, fade, preset, Path(tmp), width, height)
            native, duration = _crossfaded_sound(parts, frames, fade), (sum(frames) - fade * (len(frames) - 1)) * FRAME
        else:
            listing = Path(tmp) / "parts.txt"
            # Each entry's `duration` is its picture's planned length: without it the demuxer offsets the next file
            # by the longer AAC stream (1024-sample frames), and the picture drifts by a few ms at every join.
            listing.write_text(_concat_list(zip(parts, lengths)), encoding="utf-8")
            if sound is None:    # nothing to encode: one stream copy
                stream = ffmpeg.output(ffmpeg.input(str(listing), f="concat", safe=0), str(partial), c="copy",
                                       movflags="+faststart")
                run_graph(stream, what=f"join {out.name}", memory_mb=COPY_MB)
                os.replace(partial, out)
                return out
            picture = None
            native, duration = ffmpeg.input(str(listing), f="concat", safe=0).audio, sum(lengths)
        options = _SOUND_LOSSLESS if intermediate else _SOUND_AAC

        def make_sound():
            """The sound's file to mux, or (no picture work to wait for) its stream, encoded by the mux itself."""
            if sound is None:
                made = Path(tmp) / ("sound.mka" if intermediate else "sound.m4a")
                run_graph(ffmpeg.output(native, str(made), **options), what=f"sound of {out.name}")
                return made
            finished = sound(native, duration, Path(tmp))
            if picture is None:
                return finished
            made = Path(tmp) / "sound.m4a"
            encode(None, finished, made)
            return made

        chains = _chains(make_sound, picture)
        *_, made = side_by_side(chains, len(chains))
        pieces = picture.pieces() if picture is not None else None
        video = ffmpeg.input(str(_listing(Path(tmp), pieces) if pieces is not None else listing), f="concat",
                             safe=0).video
        if not isinstance(made, Path):           # one run: the picture copied, the finished sound encoded
            encode(video, made, out)
            return out
        audio_copy = {"acodec": "copy", **({"strict": "experimental"} if made.suffix == ".mka" else {})}
        run_graph(ffmpeg.output(video, ffmpeg.input(str(made)).audio, str(partial), vcodec="copy", **audio_copy,
                                movflags="+faststart"), what=f"mux {out.name}", memory_mb=COPY_MB)
        os.replace(partial, out)
    return out


def _chains(make_sound: Callable[[], object], picture: _CrossfadePicture | None) -> list[Callable[[], object]]:
    """The work of a join as two chains of runs, side by side (each run waiting for the budget): the picture (the
    body copies, then the transition windows made from their pieces); the sound, which starts once the (last)
    windows run has started (or the picture chain has ended). The order matters to memory: a windows run is long
    and large, so it must not queue behind a mix too large to run beside it (a long edit's), or the sound's later,
    smaller runs would then run beside it. The second chain returns what `make_sound` returns."""
    if picture is None:
        return [make_sound]

    failed = []

    def pictures() -> None:
        try:
            for job in [*picture.body_jobs, *picture.window_jobs]:
                job()
        except BaseException:
            failed.append(True)      # the sound is not made for a join that failed (its error is raised)
            raise
        finally:
            picture.windows_started.set()

    def sound():
        picture.windows_started.wait()
        return None if failed else make_sound()

    return [pictures, sound]


def _listing(tmp: Path, pieces: list[tuple[Path, float]]) -> Path:
    listing = tmp / "pieces.txt"
    listing.write_text(_concat_list(pieces), encoding="utf-8")
    return listing


def _concat_list(entries, durations: bool = True) -> str:
    """The concat demuxer's list syntax: single-quoted absolute paths (a quote written as '\\''), each with its
    exact duration in seconds (the second of each entry) unless not `durations`."""
    return "".join("file '" + str(Path(p).resolve()).replace("'", "'\\''") + "'\n"
                   + (f"duration {n:.6f}\n" if durations else "") for p, n in entries)


@dataclass(frozen=True)
class _Keyframes:
    idr: list[int]          # frame numbers of the IDR frames (a piece can start at one)
    count: int              # frames in the file
    extradata: bytes        # SPS/PPS: a copied body must share them with the re-encoded windows


def _keyframes(path: Path) -> _Keyframes:
    """IDR frames of the video stream, read from packet headers and NAL unit types (nothing is decoded)."""
    with open_media(path) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata or b"")
        size = (extradata[4] & 3) + 1 if extradata[:1] == b"\x01" else 0   # avcC: NAL length field size
        start = stream.start_time or 0
        idr, count = [], 0
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            count += 1
            if packet.is_keyframe and size and _has_idr(bytes(packet), size):
                idr.append(round(float((packet.pts - start) * stream.time_base) * FPS))
    return _Keyframes(sorted(idr), count, extradata)


def _has_idr(data: bytes, size: int) -> bool:
    at = 0
    while at + size < len(data):
        length = int.from_bytes(data[at:at + size], "big")
        if data[at + size] & 0x1F == 5:
            return True
        at += size + length
    return False


@dataclass(frozen=True)
class _Cut:
    head: int   # first frame of the copied body (frames before it belong to the window with the previous clip)
    tail: int   # first frame after the body (from here on the clip is in the next window, or trimmed away)


def _cut(k: _Keyframes, n: int, fade: int, first: bool, last: bool) -> _Cut | None:
    """Where a clip's copied body starts and ends: at the IDR frames just outside its crossfades.
    None when it has no IDR frame to cut at between them."""
    head = 0 if first else next((f for f in k.idr if f >= fade), n)
    end = n if last else n - fade
    tail = n if last and k.count == n else max((f for f in k.idr if f <= end), default=0)
    return _Cut(head, tail) if head < tail else None


class _CrossfadePicture:
    """The picture of a crossfade join: `body_jobs` (the clips cut by stream copy at their IDR frames into their
    bodies and the pieces their transition windows are made from: one ffmpeg run for up to SPLITS_AT_ONCE clips),
    then `window_jobs` (every transition window re-encoded in one ffmpeg run, from those pieces); then `pieces()`,
    the concat list that plays bodies and windows in order."""

    def __init__(self, parts: list[Path], frames: list[int], fade: int, preset: str, tmp: Path, width: int,
                 height: int):
        self.parts, self.frames, self.fade, self.preset, self.tmp = list(parts), frames, fade, preset, tmp
        self.width, self.height = width, height
        last = len(parts) - 1
        self.keys = [_keyframes(p) for p in self.parts]
        self.cuts = [_cut(k, n, fade, i == 0, i == last) for i, (k, n) in enumerate(zip(self.keys, frames))]
        for i, cut in enumerate(self.cuts):
            if cut is None and frames[i] > (fade if i in (0, last) else 2 * fade):
                # no IDR frame where the body must start or end (another encoder's GOPs): re-encode this clip with
                # IDR frames exactly there; the other clips stay copied
                self.parts[i] = normalise(self.parts[i], tmp / f"keyed-{i:04d}.mp4", frames[i] * FRAME, width,
                                          height, preset, keyframes=(fade * FRAME, (frames[i] - fade) * FRAME))
                self.keys[i] = _keyframes(self.parts[i])
                self.cuts[i] = _cut(self.keys[i], frames[i], fade, i == 0, i == last)
        self.whole = any(cut is None for cut in self.cuts)   # a clip too short to hold a body between its crossfades
        self.windows: dict[int, Path] = {}
        self.bodies: dict[int, _Pieces] = {}
        self.windows_started = threading.Event()   # set as the (last) run that encodes windows starts
        if self.whole:
            self.window_jobs, self.body_jobs = [self._whole], []
            return
        # the clips whose tail is re-encoded: every clip but the last, and the last when it is used only in part
        windowed = [j for j, cut in enumerate(self.cuts) if j < last or cut.tail < frames[j]]
        runs = [windowed[k:k + WINDOWS_AT_ONCE] for k in range(0, len(windowed), WINDOWS_AT_ONCE)]
        self.window_jobs = [lambda n=n, run=run: self._windows(n, run, last=n == len(runs) - 1)
                            for n, run in enumerate(runs)]
        self.body_jobs = [lambda k=k: self._bodies(range(k, min(k + SPLITS_AT_ONCE, len(self.parts))))
                          for k in range(0, len(self.parts), SPLITS_AT_ONCE)]

    def _whole(self) -> None:
        _crossfade_graph(self.parts, self.frames, self.tmp / "picture.mp4", self.fade, self.preset,
                         encode_mb(self.width, self.height), started=self.windows_started.set)

    def _bodies(self, clips: range) -> None:
        cuts = []
        for i in clips:
            k, n = self.keys[i], self.frames[i]
            stop = next((f for f in k.idr if f >= n), k.count)   # the tail's piece ends at the first IDR past use
            cuts.append((self.parts[i], self.cuts[i], stop, k.count, self.tmp / f"body-{i:04d}"))
        self.bodies.update(zip(clips, _split(cuts)))

    def _windows(self, batch: int, windowed: list[int], last: bool) -> None:
        """The transition windows after the clips `windowed` in one ffmpeg run (after `body_jobs`), in a linear
        graph that holds about a window's frames; `windows_started` is set as the `last` batch's run starts. The
        pieces the windows are made from are read in order as one stream (the concat demuxer: one decoder) and
        split in two, A and B, frame-aligned: A plays each window's first clip and then the second, B the same but
        switches `fade` frames earlier. Outside the crossfade A and B show the same frame; in it, a mask ramps from
        A to B (the weights of xfade's "fade"). One x264 encodes the windows, and the segment muxer cuts a file per
        window at the IDR frame forced where each begins."""
        read = 0                                          # frames of the stream before each piece
        sources, first, second, starts, ramps = [], [], [], [], []
        for j in windowed:
            tail, used = self.bodies[j].tail, self.frames[j] - self.cuts[j].tail
            sources.append(tail)
            starts.append(sum(len(r) for r in first))
            if j + 1 < len(self.parts):
                head = self.bodies[j + 1].head
                sources.append(head)
                lead = read + tail[1]
                first.append(range(read, read + used))
                first.append(range(lead + self.fade, lead + head[1]))
                second.append(range(read, read + used - self.fade))
                second.append(range(lead, lead + head[1]))
                ramps.append(starts[-1] + used - self.fade)
                read = lead + head[1]
            else:
                first.append(range(read, read + used))
                second.append(range(read, read + used))
                read += tail[1]
        listing = self.tmp / f"window-sources-{batch}.txt"
        listing.write_text(_concat_list(sources, durations=False), encoding="utf-8")
        stream = ffmpeg.input(str(listing), f="concat", safe=0, threads=1).video.filter_multi_output("split", 2)
        a, b = (stream[k].filter("select", _frames_in(spans)).filter("setpts", f"N/({FPS}*TB)")
                for k, spans in enumerate((first, second)))
        weight = "+".join(f"between(N,{r},{r + self.fade - 1})*(N-{r})" for r in ramps) or "0"
        value = f"({weight})*255/{self.fade}"
        frames = sum(len(r) for r in first)
        mask = (ffmpeg.input(f"color=c=black:s=2x2:r={FPS}", f="lavfi").video.trim(end_frame=frames)
                .filter("format", "yuv420p").filter("geq", lum=value, cb=value, cr=value)
                .filter("scale", self.width, self.height, flags="neighbor"))
        picture = ffmpeg.filter([a, b, mask], "maskedmerge")
        # One x264 thread: this run is the picture's lane beside the sound's, and frame threads only cost memory.
        # No lookahead: a window is too short for x264's macroblock tree to gain anything, and its frames held
        # 25 MB. Neither changes the stream's headers (`stitchable`), so the copied bodies still fit.
        options = {**h264_options(self.preset, CRF, tuple(f * FRAME for f in starts[1:])), "threads": 1,
                   "f": "segment", "segment_format": "mp4", "reset_timestamps": 1}
        options["x264-params"] += ":rc-lookahead=0:sync-lookahead=0"
        if len(starts) > 1:       # the segment muxer starts a new file at the first keyframe at or after each time
            options["segment_times"] = ",".join(f"{(f - 0.25) * FRAME:.6f}" for f in starts[1:])
        # verbose: ffmpeg's summary says how many frames the pieces decoded to
        log = run_graph(ffmpeg.output(picture, _numbered(self.tmp / f"window-{batch}"), an=None, r=FPS, **options),
                        what=f"the transitions of {len(starts)} joins",
                        memory_mb=encode_mb(self.width, self.height) + WINDOW_MB * len(starts),
                        started=self.windows_started.set if last else None, loglevel="verbose")
        decoded = _DECODED.search(log)
        if decoded and int(decoded.group(1)) != read:
            # the windows are taken from the stream by frame number: a frame that did not decode would shift every
            # later window of the run by a frame (and maskedmerge would repeat the last one to hide it)
            named = ", ".join(dict.fromkeys(self.parts[j].name for j in (windowed[0], windowed[-1])))
            raise MediaError(f"the transitions after {len(windowed)} clips ({named}"
                             f"{', ...' if len(windowed) > 2 else ''}): their pieces decoded to {decoded.group(1)} "
                             f"frames, not {read} (a damaged clip?)")
        self.windows.update({j: self.tmp / f"window-{batch}-{n}.mp4" for n, j in enumerate(windowed)})

    def pieces(self) -> list[tuple[Path, float]]:
        if self.whole:
            return [(self.tmp / "picture.mp4", (sum(self.frames) - self.fade * (len(self.frames) - 1)) * FRAME)]
        reference = (_keyframes(next(iter(self.windows.values()))).extradata if self.windows
                     else self.keys[0].extradata)
        pieces: list[tuple[Path, float]] = []
        for i, (part, cut) in enumerate(zip(self.parts, self.cuts)):
            body = self.bodies[i].body
            if self.keys[i].extradata != reference:   # another encoder's SPS/PPS: re-encode this body to ours
                ours = normalise(part, self.tmp / f"body-{i:04d}-ours.mp4", self.frames[i] * FRAME, self.width,
                                 self.height, self.preset, keyframes=(cut.head * FRAME, cut.tail * FRAME))
                body = _split([(ours, cut, self.frames[i], self.frames[i], self.tmp / f"body-{i:04d}-ours")])[0].body
            pieces.append((body, (cut.tail - cut.head) * FRAME))
            if i in self.windows:
                after = self.cuts[i + 1].head if i + 1 < len(self.parts) else 0
                fade = self.fade if i + 1 < len(self.parts) else 0
                pieces.append((self.windows[i], (self.frames[i] - cut.tail + after - fade) * FRAME))
        return pieces


@dataclass(frozen=True)
class _Pieces:
    """A clip cut at IDR frames by stream copy: its body, and the pieces (file, frames) before the body (the clip's
    head, frames [0, head)) and after it (its tail, frames [tail, stop)) when it has them."""
    body: Path
    head: tuple[Path, int] | None
    tail: tuple[Path, int] | None


def _numbered(stem: Path) -> str:
    """The segment muxer's file name pattern `<stem>-<n>.mp4`: a `%` of the folder's name is written `%%`."""
    return str(stem).replace("%", "%%") + "-%d.mp4"


def _frames_in(spans: list[range]) -> str:
    """A `select` expression true for the frames (by number) in `spans`."""
    return "+".join(f"between(n,{r.start},{r.stop - 1})" for r in spans if len(r)) or "0"


def _split(cuts: list[tuple[Path, _Cut, int, int, Path]]) -> list[_Pieces]:
    """Each (part, cut, stop, count, stem): the part's picture cut by stream copy at frames `cut.head`, `cut.tail`
    and `stop` (IDR frames, or the ends of the file of `count` frames) into a file a piece, named from `stem`; all
    in one ffmpeg run (a copy costs its start more than its work)."""
    args, made = [], []
    for part, cut, stop, count, stem in cuts:
        bounds = [0, *sorted({f for f in (cut.head, cut.tail, stop) if 0 < f < count})]
        ends = [*bounds[1:], count]
        args += ["-i", str(part)]
        made.append((bounds, ends, stem, cut, count))
    for k, (bounds, _, stem, _, _) in enumerate(made):
        # the segment muxer starts a new file at the first keyframe at or after each time
        times = ["-segment_times", ",".join(f"{(f - 0.25) * FRAME:.6f}" for f in bounds[1:])] if bounds[1:] else []
        args += ["-map", f"{k}:v:0", "-c", "copy", "-f", "segment", "-segment_format", "mp4", "-reset_timestamps",
                 "1", *times, _numbered(stem)]
    names = ", ".join(part.name for part, *_ in cuts)
    run_args([ffmpeg_binary(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
             what=f"copy the bodies of {names}", memory_mb=COPY_MB + SPLIT_MB * len(cuts))

    def pieces(bounds: list[int], ends: list[int], stem: Path, cut: _Cut, count: int) -> _Pieces:
        def piece(start: int) -> tuple[Path, int]:
            k = bounds.index(start)
            return Path(f"{stem}-{k}.mp4"), ends[k] - start

        return _Pieces(piece(cut.head)[0], piece(0) if cut.head > 0 else None,
                       piece(cut.tail) if cut.tail < count else None)

    return [pieces(*m) for m in made]


def _crossfaded_sound(parts: list[Path], frames: list[int], fade: int):
    """Each clip's sound cut to its picture's length, chained with acrossfades as long as the picture's xfades."""
    sources = {}
    for part in parts:   # one input per file: a clip used twice is split, not opened twice (ffmpeg-python merges them)
        sources.setdefault(part, []).append(None)
    for part, uses in sources.items():
        audio = ffmpeg.input(str(part)).audio
        split = audio.filter_multi_output("asplit", len(uses)) if len(uses) > 1 else None
        sources[part] = [split[k] for k in range(len(uses))] if split is not None else [audio]
    sound = None
    for i, (part, n) in enumerate(zip(parts, frames)):
        index = parts[:i].count(part)
        clip = (sources[part][index].filter("aformat", sample_rates=AUDIO_RATE, channel_layouts="stereo")
                .filter("apad").filter("atrim", end=f"{n * FRAME:.6f}").filter("asetpts", "PTS-STARTPTS"))
        sound = clip if sound is None else ffmpeg.filter([sound, clip], "acrossfade", d=f"{fade * FRAME:.6f}")
    return sound


def _crossfade_graph(parts: list[Path], frames: list[int], out: Path, fade: int, preset: str,
                     memory_mb: float, started: Callable[[], object]) -> None:
    """One ffmpeg graph: a chain of xfade, each join overlapping `fade` frames; picture only. Re-encodes the whole
    picture: only for clips too short to copy anything between their crossfades."""
    picture, offset = None, 0
    for part, n in zip(parts, frames):
        clip = ffmpeg.input(str(part)).video.trim(end_frame=n).setpts("PTS-STARTPTS")
        if picture is None:
            picture = clip
        else:
            picture = ffmpeg.filter([picture, clip], "xfade", transition="fade", duration=f"{fade * FRAME:.6f}",
                                    offset=f"{offset * FRAME:.6f}")
        offset += n - fade
    stream = ffmpeg.output(picture.filter("format", "yuv420p"), str(out), an=None, r=FPS, **h264_options(preset, CRF))
    run_graph(stream, what=f"crossfade into {out.name}", memory_mb=memory_mb + 12 * len(parts), started=started)
