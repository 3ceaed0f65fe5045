"""Speech synthesis with the real pyttsx3 2.99 and espeak-ng, and the checks on its files.

Measured on 2 cores with espeak-ng 1.51 at 140 wpm: a synthesis (fresh process
included) takes 0.1-0.3 s; Mandarin comes out at 0.35-0.41 s of audio per
character, English at 0.44-0.60 s per word.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
import wave
from concurrent.futures import ThreadPoolExecutor

import pytest

from messages import audio
from messages.audio import (AUDIO_FILE_NAME, SynthesisError, audio_path, check, ensure_audio,
                            synthesize)

MANDARIN = "县应急管理局通知：明天十五日下午三点停水，请提前储水。"  # 24 characters
ENGLISH = "The county office: water will be off tomorrow from three pm. Please store water."
HANG_TIMEOUT_SECONDS = 60


@pytest.fixture(scope="module")
def mandarin_wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("zh") / "notice.wav"
    return synthesize(MANDARIN, "zh", path)


def test_mandarin_is_spoken_by_the_pinyin_voice_as_mono_16_bit_pcm(mandarin_wav):
    assert mandarin_wav.voice_id == "sit/cmn-latn-pinyin"
    with wave.open(str(mandarin_wav.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getcomptype()) == (1, 2, "NONE")
        seconds = wav.getnframes() / wav.getframerate()
    # 24 characters at 140 wpm measured 9.8 s; a cut-off or skipped text falls outside.
    assert 6 <= seconds <= 15
    assert mandarin_wav.duration_seconds == pytest.approx(seconds)


def test_info_reports_the_files_sha256(mandarin_wav):
    assert mandarin_wav.sha256 == hashlib.sha256(mandarin_wav.path.read_bytes()).hexdigest()
    assert mandarin_wav.size_bytes == mandarin_wav.path.stat().st_size


def test_english_is_spoken_by_an_english_voice(tmp_path):
    info = synthesize(ENGLISH, "en", tmp_path / "notice.wav")
    assert info.voice_id == "gmw/en-us"
    # 14 words at 140 wpm measured 6.4 s.
    assert 3.5 <= info.duration_seconds <= 12


def test_the_cantonese_voice_reads_the_chinese_text_in_cantonese(tmp_path, mandarin_wav):
    info = synthesize(MANDARIN, "zh", tmp_path / "yue.wav", voice="yue")
    assert info.voice_id == "sit/yue"
    samples = info.path.read_bytes()[44:]
    assert len(set(samples)) > 100  # not silent
    # Measured: 24 characters, 7.8 s in Cantonese where Mandarin takes 9.9 s; a voice that
    # spelt the characters out (Debian's hak says "Chinese letter" for each: 26 s) is refused.
    assert 0.6 * mandarin_wav.duration_seconds <= info.duration_seconds \
        <= 1.4 * mandarin_wav.duration_seconds
    assert info.sha256 != mandarin_wav.sha256


def test_debians_hakka_voice_spells_chinese_out_and_its_speech_is_refused(tmp_path):
    """Why DEFAULT_VOICES has no hak: espeak-ng 1.51's hak says "Chinese letter" for each
    character. When this fails, espeak-ng reads Hakka: add it to DEFAULT_VOICES."""
    with pytest.raises(SynthesisError, match="s of audio for this text"):
        synthesize(MANDARIN, "zh", tmp_path / "hak.wav", voice="hak")
    assert "hak" not in audio.DEFAULT_VOICES


def test_a_voice_is_chosen_by_the_spoken_language_when_it_reads_the_text():
    voices = dict(audio.DEFAULT_VOICES)
    assert audio.choose_voice("yue", "zh", voices) == audio.Voice("yue", "yue")
    assert audio.choose_voice("zh", "zh", voices) == audio.Voice("zh", "cmn-latn-pinyin")
    # No voice for Zhuang, Hakka by default: the text's language, counted as a fallback.
    assert audio.choose_voice("za", "zh", voices) == audio.Voice("zh", "cmn-latn-pinyin", fallback=True)
    assert audio.choose_voice("hak", "zh", voices).fallback
    assert audio.choose_voice("hak", "zh", {**voices, "hak": "hak"}) == audio.Voice("hak", "hak")
    # A Cantonese voice cannot read an English text.
    assert audio.choose_voice("yue", "en", voices) == audio.Voice("en", "en-us", fallback=True)


def test_the_file_name_names_the_voice(tmp_path):
    assert audio_path(tmp_path, 4, "zh", MANDARIN, voice="yue").name.startswith("a4-zh-yue-")
    assert audio_path(tmp_path, 4, "zh", MANDARIN).name.startswith("a4-zh-cmn-latn-pinyin-")
    assert AUDIO_FILE_NAME.fullmatch("a4-zh-0123456789ab.wav")  # made before voices were named
    assert not AUDIO_FILE_NAME.fullmatch("a4-zh-../x-0123456789ab.wav")


def test_a_faster_rate_makes_shorter_audio(tmp_path, mandarin_wav):
    fast = synthesize(MANDARIN, "zh", tmp_path / "fast.wav", rate=200)
    assert fast.rate == 200
    assert fast.duration_seconds < mandarin_wav.duration_seconds * 0.85


def test_back_to_back_syntheses_both_leave_speech(tmp_path):
    first = synthesize("第一条通知，请注意。", "zh", tmp_path / "first.wav")
    second = synthesize("第二条通知，请注意安全。", "zh", tmp_path / "second.wav")
    assert first.size_bytes > 1000 and second.size_bytes > 1000
    assert first.sha256 != second.sha256
    check(first.path, "第一条通知，请注意。", "zh")


def _synthesize_in_forked_child(path: str) -> None:
    synthesize("分叉进程里的通知。", "zh", path)


def test_synthesis_in_a_forked_child_does_not_hang(tmp_path, mandarin_wav):
    # The parent has synthesized already (the fixture); an engine living in this
    # process would make the forked child hang, as an rq forking worker would.
    assert mandarin_wav.path.exists()
    child_path = tmp_path / "child.wav"
    child = multiprocessing.get_context("fork").Process(
        target=_synthesize_in_forked_child, args=(str(child_path),))
    child.start()
    child.join(HANG_TIMEOUT_SECONDS)
    if child.is_alive():
        child.kill()
        pytest.fail(f"synthesis in a forked child still running after {HANG_TIMEOUT_SECONDS} s")
    assert child.exitcode == 0
    check(child_path, "分叉进程里的通知。", "zh")


def test_an_empty_first_attempt_is_retried_once(tmp_path, monkeypatch):
    real = audio._synthesize_in_subprocess
    calls = []

    def empty_then_real(text, language, path, rate):
        calls.append(path)
        if len(calls) == 1:
            return "sit/cmn-latn-pinyin"  # leaves the temporary file empty
        return real(text, language, path, rate)

    monkeypatch.setattr(audio, "_synthesize_in_subprocess", empty_then_real)
    info = synthesize("重试的通知。", "zh", tmp_path / "retried.wav")
    assert len(calls) == 2
    assert info.size_bytes > 1000


def test_two_failed_attempts_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(audio, "_synthesize_in_subprocess", lambda *arguments: "none")
    with pytest.raises(SynthesisError, match="failed 2 times.*missing or empty"):
        synthesize("通知。", "zh", tmp_path / "never.wav")
    assert list(tmp_path.iterdir()) == []  # no temporary files left behind


def test_empty_text_and_unknown_language_are_refused(tmp_path):
    with pytest.raises(SynthesisError, match="empty"):
        synthesize("  ", "zh", tmp_path / "blank.wav")
    with pytest.raises(SynthesisError, match="no voice"):
        synthesize("Bonjour.", "fr", tmp_path / "french.wav")


def test_check_accepts_the_synthesized_file(mandarin_wav):
    assert check(mandarin_wav.path, MANDARIN, "zh").sha256 == mandarin_wav.sha256


def test_check_rejects_an_empty_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(SynthesisError, match="missing or empty"):
        check(empty, MANDARIN, "zh")


def test_check_rejects_garbage(tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio" * 100)
    with pytest.raises(SynthesisError, match="not a readable WAV"):
        check(garbage, MANDARIN, "zh")


def test_check_rejects_a_truncated_file(tmp_path, mandarin_wav):
    truncated = tmp_path / "truncated.wav"
    content = mandarin_wav.path.read_bytes()
    truncated.write_bytes(content[:len(content) // 2])
    with pytest.raises(SynthesisError, match="samples present"):
        check(truncated, MANDARIN, "zh")


def test_check_rejects_audio_too_short_for_a_long_text(mandarin_wav):
    with pytest.raises(SynthesisError, match="expected"):
        check(mandarin_wav.path, MANDARIN * 6, "zh")


def test_check_rejects_stereo_and_silence(tmp_path):
    stereo, silent = tmp_path / "stereo.wav", tmp_path / "silent.wav"
    _write_wav(stereo, channels=2, frames=b"\x01\x00" * 2 * 22050 * 10)
    _write_wav(silent, channels=1, frames=b"\x00\x00" * 22050 * 10)
    with pytest.raises(SynthesisError, match="mono 16-bit"):
        check(stereo, MANDARIN, "zh")
    with pytest.raises(SynthesisError, match="silent"):
        check(silent, MANDARIN, "zh")


def test_audio_path_is_stable_and_follows_the_text(tmp_path):
    path = audio_path(tmp_path, 42, "zh", MANDARIN)
    assert path == audio_path(tmp_path, 42, "zh", MANDARIN)
    assert path.parent == tmp_path and AUDIO_FILE_NAME.fullmatch(path.name)
    assert path.name.startswith("a42-zh-")
    assert audio_path(tmp_path, 42, "zh", MANDARIN + "更正") != path
    assert audio_path(tmp_path, 42, "en", MANDARIN) != path
    assert audio_path(tmp_path, 42, "zh", MANDARIN, rate=180) != path


def test_ensure_audio_reuses_the_file_and_remakes_it_when_the_text_changes(tmp_path):
    made = ensure_audio(tmp_path, 7, "zh", "停水通知，请储水。")
    made_at = made.path.stat().st_mtime_ns
    reused = ensure_audio(tmp_path, 7, "zh", "停水通知，请储水。")
    assert reused.path == made.path and reused.sha256 == made.sha256
    assert made.path.stat().st_mtime_ns == made_at

    changed = ensure_audio(tmp_path, 7, "zh", "停水通知更正，请储水。")
    assert changed.path != made.path and changed.sha256 != made.sha256
    assert changed.path.exists() and made.path.exists()


def test_speech_files_are_the_owners_alone(tmp_path):
    old_umask = os.umask(0o022)
    try:
        made = ensure_audio(tmp_path / "media", 9, "zh", "停水通知。")
    finally:
        os.umask(old_umask)
    assert made.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "media").stat().st_mode & 0o777 == 0o700
    for lock in (tmp_path / "media").glob(".*.lock"):
        assert lock.stat().st_mode & 0o777 == 0o600


def test_ensure_audio_remakes_a_damaged_file(tmp_path):
    path = audio_path(tmp_path, 8, "zh", "损坏的文件。")
    path.write_bytes(b"RIFF broken")
    info = ensure_audio(tmp_path, 8, "zh", "损坏的文件。")
    assert info.path == path and info.size_bytes > 1000


def test_a_file_damaged_after_it_was_checked_is_made_again(tmp_path):
    made = ensure_audio(tmp_path, 10, "zh", "检查过后又损坏的文件。")
    made.path.write_bytes(b"RIFF broken")  # changed on disk after this process checked it
    again = ensure_audio(tmp_path, 10, "zh", "检查过后又损坏的文件。")
    assert again.path == made.path and again.sha256 == made.sha256
    assert check(again.path, "检查过后又损坏的文件。", "zh").sha256 == made.sha256


def test_prune_removes_only_that_announcements_old_files(tmp_path):
    def made(announcement_id, text, hours_ago):
        path = audio_path(tmp_path, announcement_id, "zh", text)
        path.write_bytes(b"RIFF")
        path.with_name(f".{path.name}.lock").write_text("")
        moment = time.time() - hours_ago * 3600
        os.utime(path, (moment, moment))
        return path

    old_draft, fresh_draft = made(0, "旧草稿", 2), made(0, "新草稿", 0)
    old_notice = made(5, "正式通知", 2)
    assert audio.prune(tmp_path, 0, older_than_seconds=3600) == 1
    assert not old_draft.exists() and not old_draft.with_name(f".{old_draft.name}.lock").exists()
    assert fresh_draft.exists() and old_notice.exists()


def test_racing_callers_make_the_file_once(tmp_path, monkeypatch):
    made = []
    real = audio.synthesize
    lock = threading.Lock()

    def counted(*arguments, **keywords):
        with lock:
            made.append(arguments)
        return real(*arguments, **keywords)

    monkeypatch.setattr(audio, "synthesize", counted)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _: ensure_audio(tmp_path, 9, "zh", "同时请求的通知。"),
                                range(2)))
    assert len(made) == 1
    assert results[0].sha256 == results[1].sha256
    assert [path.name for path in tmp_path.iterdir() if path.suffix == ".wav"] == [
        results[0].path.name]


def _write_wav(path: os.PathLike, *, channels: int, frames: bytes) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(22050)
        wav.writeframes(frames)
