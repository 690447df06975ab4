"""Video conversion through real FFmpeg (PyAV): timing, sound, rotation, sizes, failures, API.

Clips are made in tmp_path with PyAV (tests/video_clips.py): a few tiny frames each.
"""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")

from conftest import make_translator, repo_root, write_image_file  # noqa: E402
from video_clips import identity_translator, make_clip, probe  # noqa: E402

from translate.convert import convert  # noqa: E402
from translate.data.video import VideoReadError, is_video_file, list_videos, sniff_video  # noqa: E402
from translate.data.video_write import list_codecs  # noqa: E402
from translate.video import VideoOptions, convert_video, parse_frames  # noqa: E402


def _max_diff(a, b):
    return max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a, b))


def _no_temp_files(folder: Path):
    return [p.name for p in Path(folder).rglob(".*.tmp")] == []


def test_sniff_recognises_containers_by_content(tmp_path):
    assert sniff_video(b"\x00\x00\x00\x20ftypisom\x00\x00") == "mp4"
    assert sniff_video(b"\x00\x00\x00\x20ftypM4A \x00\x00") is None  # sound only
    assert sniff_video(b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f") == "matroska"
    assert sniff_video(b"RIFF\x10\x00\x00\x00AVI LIST") == "avi"
    assert sniff_video(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d") is None
    clip = make_clip(tmp_path / "a.mkv", audio=None)
    clip.rename(tmp_path / "noname")
    write_image_file(tmp_path / "x.png", np.zeros((4, 4, 3), np.uint8))
    assert is_video_file(tmp_path / "noname") and not is_video_file(tmp_path / "x.png")
    assert list_videos(tmp_path) == [tmp_path / "noname"]


def test_lossless_identity_keeps_frames_timing_sound_and_odd_size(tmp_path):
    src = make_clip(tmp_path / "in.mkv", width=33, height=21, codec="ffv1", pix_fmt="bgr0", audio="libopus")
    dst = tmp_path / "out.mkv"
    result = convert_video(identity_translator(), src, dst, options=VideoOptions(codec="ffv1"), progress=False)
    a, b = probe(src), probe(dst)
    assert result.frames == len(a["frames"]) == len(b["frames"]) == 8
    assert b["size"] == a["size"] == (33, 21)
    assert b["times"] == a["times"]
    assert b["audio"] == a["audio"] and len(a["audio"]) > 10  # packets byte-identical, same times
    assert _max_diff(a["frames"], b["frames"]) == 0
    assert _no_temp_files(tmp_path)


def test_subtitles_are_copied(tmp_path):
    src = make_clip(tmp_path / "in.mkv", audio="libopus", subtitles=True)
    dst = tmp_path / "out.mkv"
    convert_video(identity_translator(), src, dst, progress=False)
    a, b = probe(src), probe(dst)
    assert b["streams"] == a["streams"] == ["video", "audio", "subtitle"]
    assert b["subtitles"] == a["subtitles"] == [(b"Hello", Fraction(1, 10)), (b"World", Fraction(1, 2))]
    assert b["audio"] == a["audio"] and b["times"] == a["times"]


def test_default_h264_keeps_timing_and_aac_sound(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=6, audio="aac")
    dst = tmp_path / "out.mp4"
    convert_video(identity_translator(), src, dst, progress=False)
    a, b = probe(src), probe(dst)
    assert b["times"] == a["times"] and b["size"] == a["size"] and b["audio"] == a["audio"]
    assert b["duration"] == a["duration"]
    with av.open(str(dst)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert _max_diff(a["frames"], b["frames"]) < 80  # lossy 4:2:0 of a 48x32 clip


def test_variable_frame_rate_timestamps_are_kept(tmp_path):
    pts = [0, 100, 150, 400, 410, 900, 1000]
    src = make_clip(tmp_path / "vfr.mp4", pts=pts, audio=None)
    for codec in ("h264", "ffv1"):  # H.264 with B-frames: packet durations must follow the source's
        dst = tmp_path / f"out_{codec}.mp4"
        convert_video(identity_translator(), src, dst, options=VideoOptions(codec=codec), progress=False)
        assert probe(src)["times"] == probe(dst)["times"] == [Fraction(p, 1000) for p in pts]
        assert probe(dst)["duration"] == probe(src)["duration"] == (1_100_000, Fraction(11, 10))


def test_rotation_is_kept_and_the_network_sees_upright_frames(tmp_path):
    src = make_clip(tmp_path / "phone.mp4", width=48, height=32, rotation=90, audio="aac")
    dst = tmp_path / "out.mp4"
    seen = []
    convert_video(identity_translator(seen), src, dst, options=VideoOptions(codec="ffv1"), progress=False)
    a, b = probe(src), probe(dst)
    assert a["rotation"] == b["rotation"] == 90
    assert b["size"] == (48, 32)  # stored as before, displayed turned
    assert {s[2:] for s in seen} == {(48, 32)}  # (H, W): upright = a quarter turn of 48x32
    assert _max_diff(a["frames"], b["frames"]) == 0 and b["audio"] == a["audio"]


def test_truncated_video_is_reported_with_its_frame_and_leaves_no_output(tmp_path):
    src = make_clip(tmp_path / "full.mkv", frames=30, audio="libopus")
    inp = tmp_path / "in"
    inp.mkdir()
    data = src.read_bytes()
    (inp / "cut.mkv").write_bytes(data[: len(data) * 6 // 10])
    out = tmp_path / "out"
    summary = convert(identity_translator(), inp, out, progress=False)
    assert summary.failed == 1 and summary.converted == 0
    failed = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert failed[0]["path"].endswith("cut.mkv")
    assert "decoding ended at frame" in failed[0]["reason"] and "truncated" in failed[0]["reason"]
    assert not (out / "cut.mkv").exists() and _no_temp_files(out)
    with pytest.raises(VideoReadError) as err:
        convert_video(identity_translator(), inp / "cut.mkv", tmp_path / "x.mkv", progress=False)
    assert 0 < err.value.frame < 30


def test_mp4_cut_before_its_index_is_reported(tmp_path):
    data = make_clip(tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="cannot open the video.*moov atom not found"):
        convert_video(identity_translator(), tmp_path / "cut.mp4", tmp_path / "o.mp4", progress=False)
    assert not (tmp_path / "o.mp4").exists() and _no_temp_files(tmp_path)


def test_previews_select_frames(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=10, audio="aac")
    t = identity_translator()
    convert_video(t, src, tmp_path / "part.mp4", options=VideoOptions(frames=parse_frames("2:6")), progress=False)
    convert_video(t, src, tmp_path / "every.mp4", options=VideoOptions(every=3), progress=False)
    part, every, full = probe(tmp_path / "part.mp4"), probe(tmp_path / "every.mp4"), probe(src)
    assert part["times"] == [Fraction(i, 10) for i in range(4)]  # starts at 0
    assert part["audio"] and part["audio"][0][1] >= 0
    assert every["times"] == [full["times"][i] for i in (0, 3, 6, 9)]
    assert every["audio"] == full["audio"]
    assert parse_frames("5:") == (5, None)
    with pytest.raises(ValueError, match="START:END"):
        parse_frames("7")


def test_rerun_skips_finished_videos_and_codec_errors_are_clear(tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=3, audio=None)
    t = identity_translator()
    assert not convert_video(t, src, tmp_path / "o.mp4", progress=False).skipped
    assert convert_video(t, src, tmp_path / "o.mp4", progress=False).skipped
    with pytest.raises(ValueError, match="WebM file holds only"):
        convert_video(t, src, tmp_path / "o.webm", options=VideoOptions(codec="h264"), progress=False)
    with pytest.raises(ValueError, match="hevc encoder needs frames of at least 32 pixels"):
        convert_video(t, make_clip(tmp_path / "small.mkv", width=34, height=22, frames=2, audio=None),
                      tmp_path / "o.mkv", options=VideoOptions(codec="hevc"), progress=False)
    with pytest.raises(ValueError, match="unknown video codec 'divx'; valid: h264"):
        convert_video(t, src, tmp_path / "o2.mp4", options=VideoOptions(codec="divx"), progress=False)
    assert {"h264", "ffv1"} <= set(list_codecs())


@pytest.mark.slow
def test_folder_of_images_and_videos_converts_in_one_command(tmp_path):
    ckpt = make_translator(tmp_path / "run")
    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    write_image_file(inp / "photo.png", np.full((20, 30, 3), 100, np.uint8))
    make_clip(inp / "a.mp4", frames=4)
    make_clip(inp / "sub" / "b.webm", frames=3, codec="libvpx-vp9", audio="libopus", options={})
    make_clip(tmp_path / "c.mkv", frames=3, audio=None).rename(inp / "clip_without_ending")
    from translate import Translator

    t = Translator.load(ckpt, device="cpu")
    out = tmp_path / "out"
    summary = convert(t, inp, out, progress=False)
    assert summary.converted == 4 and summary.failed == 0
    assert (out / "photo.png").is_file()
    assert len(probe(out / "a.mp4")["frames"]) == 4
    webm = probe(out / "sub" / "b.webm")
    assert len(webm["frames"]) == 3 and webm["audio"] == probe(inp / "sub" / "b.webm")["audio"]
    assert len(probe(out / "clip_without_ending")["frames"]) == 3
    assert convert(t, inp, out, progress=False).skipped == 4


@pytest.mark.slow
def test_kill_mid_video_leaves_no_partial_file(tmp_path):
    ckpt = make_translator(tmp_path / "run")
    src = make_clip(tmp_path / "long.mp4", frames=400, width=96, height=64, audio="aac")
    dst = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "translate", "convert", str(ckpt), str(src), str(dst), "--batch-size", "1",
           "--no-progress", "--codec", "h264", "--crf", "20"]
    env = {**os.environ, "PYTHONPATH": str(repo_root()), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:  # wait until frames are being written
            temps = list(tmp_path.glob(".out.mp4.*.tmp"))
            if temps and temps[0].stat().st_size > 2000:
                break
            assert proc.poll() is None, "the conversion ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no temporary output appeared within 60 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not dst.exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(probe(dst)["frames"]) == 400 and _no_temp_files(tmp_path)


def test_translate_frames_is_lazy_batched_and_ordered():
    seen = []
    t = identity_translator(seen)

    def frames():
        i = 0
        while True:  # endless: only what is consumed is translated
            yield np.full((6, 10, 3), i % 256, np.uint8)
            i += 1

    gen = t.translate_frames(frames(), batch_size=3)
    outs = [next(gen) for _ in range(5)]
    assert [int(o[0, 0, 0]) for o in outs] == [0, 1, 2, 3, 4]
    assert seen == [(3, 3, 6, 10), (3, 3, 6, 10)]
    smooth = list(t.translate_frames([np.zeros((16, 16, 3), np.uint8)] * 3, temporal="flow"))
    assert len(smooth) == 3 and all(s.shape == (16, 16, 3) for s in smooth)


def test_translate_video_api(tmp_path):
    ckpt = make_translator(tmp_path / "run")
    from translate import Translator

    t = Translator.load(ckpt, device="cpu")
    src = make_clip(tmp_path / "in.mov", frames=3, width=40, height=24, audio="aac")
    result = t.translate_video(src, tmp_path / "out.mov", progress=False)
    assert result.frames == 3 and probe(tmp_path / "out.mov")["size"] == (40, 24)
