"""Speech audio for calls and loudspeakers: one checked WAV per announcement, language and voice.

pyttsx3 2.99 with espeak-ng has three traps, each handled here or in ``messages.synthesizer``
(the process that runs the engine):

* ``runAndWait()`` returns before the WAV is written (espeak-ng synthesizes on its own
  thread), so the synthesizer waits for the ``finished-utterance`` callback.
* Back-to-back runs in one process occasionally leave an empty file, and a rate set
  right after a voice change is sometimes ignored, so every synthesis runs in a fresh
  process, and a file that fails ``check`` is made once more before giving up.
* An engine created before ``fork()`` hangs in the child (rq's forking worker). The
  engine therefore never lives in the calling process: ``synthesize`` starts
  ``python -m messages.synthesizer`` and only reads the finished file.

Files are written under a temporary name and renamed into place, so a reader never
sees half a file, and ``ensure_audio`` takes a per-file lock so that two workers
racing for the same announcement make it once.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from array import array
from dataclasses import dataclass
from pathlib import Path

from messages.languages import reads_aloud, writes_han

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# espeak-ng voice per spoken language (canonical tags, messages.languages), matched against
# the last part of pyttsx3's voice ids ("sit/cmn-latn-pinyin"); SPEECH_VOICES overrides and
# adds to it. Plain "cmn" reads Chinese characters as pinyin letters. "yue" reads Chinese
# characters in Cantonese (a 29-character notice: 9.4 s, Mandarin 11.2 s). Debian's "hak"
# (espeak-ng 1.51) is not here: it reads each Chinese character as the English words
# "Chinese letter" (30.3 s for the same notice), so Hakka speakers hear Mandarin until an
# espeak-ng that reads Hakka is installed and SPEECH_VOICES names it.
DEFAULT_VOICES = {"zh": "cmn-latn-pinyin", "yue": "yue", "en": "en-us"}
VOICE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
# Words per minute as espeak-ng counts them; its default of 175 is too fast for elderly
# listeners. At 140 the Mandarin voice says about 2.7 characters a second.
DEFAULT_RATES = {"zh": 140, "en": 140}
SYNTHESIS_TIMEOUT_SECONDS = 60
SYNTHESIS_ATTEMPTS = 2

# Plausible seconds of audio per spoken unit (a Chinese character, or an English
# word) at REFERENCE_RATE; scaled by REFERENCE_RATE / rate, which matches espeak-ng
# (the same Mandarin script takes 83.4 s at 140 wpm and 54.6 s at 200).
# Measured with espeak-ng 1.51 at 140 wpm on a headline, a one-sentence notice, a body
# with numbers and a full call script: Mandarin 0.35-0.41 s per character (0.52 for a
# four-character headline, its final pause weighing more), English 0.44-0.60 s per
# word. The ranges allow about half and double that: wide enough for punctuation and
# long spelt-out numbers, narrow enough to catch a file cut off part-way or a
# synthesizer that skipped most of the text. Duration cannot tell the voices apart
# (plain ``cmn`` takes 12.9 s where ``cmn-latn-pinyin`` takes 10.6 s), so the voice is
# checked by the id the engine reports instead.
REFERENCE_RATE = 140
# "zh" for any text in Chinese characters (Cantonese and Hakka voices included), "en" for
# words of any other alphabet.
SECONDS_PER_UNIT = {"zh": (0.18, 0.8), "en": (0.22, 1.2)}
# espeak-ng ends every utterance with a short pause; very short texts need this slack.
PAUSE_SLACK_SECONDS = 1.0

# a<announcement>-<text language>-<voice>-<digest>.wav; files made before voices were
# configurable have no voice part.
AUDIO_FILE_NAME = re.compile(r"a\d+-[a-z]{2,3}(?:-[a-z0-9][a-z0-9-]{0,39})?-[0-9a-f]{12}\.wav")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
WORD = re.compile(r"[A-Za-z0-9]+")
#: A word of any alphabet (Spanish "está", Zhuang "gyaeuj"), for texts not in Chinese characters.
ANY_WORD = re.compile(r"[^\W_]+")


class SynthesisError(RuntimeError):
    """Speech could not be made, or a file is not usable speech for its text."""


@dataclass(frozen=True)
class Voice:
    """Who reads a text aloud: ``name`` (an espeak-ng voice) speaking ``language``.

    ``fallback`` when that is not the listener's spoken language: it has no voice, or its
    voice cannot read the text's language (``messages.languages.reads_aloud``).
    """

    language: str
    name: str
    fallback: bool = False


def choose_voice(spoken_language: str, text_language: str, voices: dict[str, str]) -> Voice:
    """The voice for a listener of ``spoken_language`` hearing a text in ``text_language``:
    their own when ``voices`` has one that reads that text, else the text's language's."""
    if spoken_language in voices and reads_aloud(spoken_language, text_language):
        return Voice(spoken_language, voices[spoken_language])
    if text_language not in voices:
        raise SynthesisError(f"no voice for language {text_language!r} (SPEECH_VOICES)")
    return Voice(text_language, voices[text_language], fallback=spoken_language != text_language)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    language: str
    duration_seconds: float
    sample_rate: int
    size_bytes: int
    sha256: str
    rate: int
    voice_id: str | None = None  # what the engine reported; None for a file checked, not made

    @property
    def file_name(self) -> str:
        return self.path.name


def audio_path(media_dir: str | os.PathLike, announcement_id: int, language: str, text: str,
               *, rate: int | None = None, voice: str | None = None) -> Path:
    """Stable per announcement, language, text, voice and rate; a new text gets a new file.

    ``language`` is the text's; ``voice`` the espeak-ng voice reading it (default: the
    language's own in ``DEFAULT_VOICES``), named in the file name."""
    rate = _rate(language, rate)
    voice = _voice(language, voice)
    fingerprint = f"{voice}|{rate}|{text}".encode("utf-8")
    digest = hashlib.sha256(fingerprint).hexdigest()[:12]
    return Path(media_dir) / f"a{int(announcement_id)}-{language}-{voice}-{digest}.wav"


def ensure_audio(media_dir: str | os.PathLike, announcement_id: int, language: str, text: str,
                 *, rate: int | None = None, voice: str | None = None) -> AudioInfo:
    """The checked speech file for this text, made only if no good one exists yet."""
    voice = _voice(language, voice)
    path = audio_path(media_dir, announcement_id, language, text, rate=rate, voice=voice)
    existing = _checked_or_none(path, text, language, rate)
    if existing:
        return existing
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the owner's alone
    with _file_lock(path):
        # Another process may have made it while this one waited for the lock.
        made = _checked_or_none(path, text, language, rate)
        if made is None:
            made = synthesize(text, language, path, rate=rate, voice=voice)
            _remember(path, text, language, rate, made)
        return made


def existing_audio(media_dir: str | os.PathLike, announcement_id: int, language: str, text: str,
                   *, rate: int | None = None, voice: str | None = None) -> AudioInfo | None:
    """The checked speech file for this text when one was made already; never synthesizes."""
    return _checked_or_none(audio_path(media_dir, announcement_id, language, text, rate=rate,
                                       voice=voice), text, language, rate)


def prune(media_dir: str | os.PathLike, announcement_id: int, older_than_seconds: float) -> int:
    """Remove an announcement's speech files (and their lock files) not changed for a while.

    For the console's drafts, which get a new file for every text a clerk tries:
    nobody is still listening to one made an hour ago. Returns how many files went.
    """
    cutoff = time.time() - older_than_seconds
    removed = 0
    for path in Path(media_dir).glob(f"a{int(announcement_id)}-*.wav"):
        lock = path.with_name(f".{path.name}.lock")
        with contextlib.suppress(FileNotFoundError):
            if AUDIO_FILE_NAME.fullmatch(path.name) and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
    return removed


def synthesize(text: str, language: str, path: str | os.PathLike, *,
               rate: int | None = None, voice: str | None = None) -> AudioInfo:
    """Make ``path`` from ``text`` (in ``language``, read by ``voice``) in a fresh process,
    check it, and move it into place."""
    if not text.strip():
        raise SynthesisError("nothing to say: the text is empty")
    path = Path(path)
    rate = _rate(language, rate)
    voice = _voice(language, voice)
    failures = []
    for _ in range(SYNTHESIS_ATTEMPTS):
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                                 suffix=".tmp")
        os.close(descriptor)
        try:
            voice_id = _synthesize_in_subprocess(text, voice, Path(temporary), rate)
            info = check(temporary, text, language, rate=rate)
            os.chmod(temporary, 0o600)  # whatever the synthesizer did to the file's mode
            os.replace(temporary, path)
            return _moved(info, path, voice_id)
        except SynthesisError as error:
            failures.append(str(error))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
    raise SynthesisError(f"speech for {path.name} failed {len(failures)} times: "
                         + "; ".join(failures))


def check(path: str | os.PathLike, text: str, language: str, *,
          rate: int | None = None) -> AudioInfo:
    """Refuse a file that is not mono 16-bit PCM speech of about the right length."""
    path = Path(path)
    rate = _rate(language, rate)
    if not path.is_file() or path.stat().st_size == 0:
        raise SynthesisError(f"{path.name}: missing or empty")
    content = path.read_bytes()
    sample_rate, samples = _pcm_samples(path)
    duration = len(samples) / sample_rate
    shortest, longest = plausible_duration(text, language, rate)
    if not shortest <= duration <= longest:
        raise SynthesisError(f"{path.name}: {duration:.1f} s of audio for this text, expected "
                             f"{shortest:.1f}-{longest:.1f} s at {rate} wpm")
    return AudioInfo(path=path, language=language, duration_seconds=duration,
                     sample_rate=sample_rate, size_bytes=len(content),
                     sha256=hashlib.sha256(content).hexdigest(), rate=rate)


def plausible_duration(text: str, language: str, rate: int | None = None) -> tuple[float, float]:
    units = spoken_units(text, language)
    low, high = SECONDS_PER_UNIT["zh" if writes_han(language) else "en"]
    scale = REFERENCE_RATE / _rate(language, rate)
    return units * low * scale, units * high * scale + PAUSE_SLACK_SECONDS


def spoken_units(text: str, language: str) -> int:
    """Chinese characters (plus any Latin words among them) for a text in Chinese characters
    (``zh``, ``yue``, ``hak``), else words."""
    if writes_han(language):
        return len(HAN.findall(text)) + len(WORD.findall(text))
    return len(ANY_WORD.findall(text))


def _pcm_samples(path: Path) -> tuple[int, array]:
    try:
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getcomptype())
            if shape != (1, 2, "NONE"):
                raise SynthesisError(f"{path.name}: expected mono 16-bit PCM, got "
                                     f"{shape[0]} channel(s), {shape[1] * 8}-bit {shape[2]}")
            sample_rate, declared = wav.getframerate(), wav.getnframes()
            frames = wav.readframes(declared)
    except (wave.Error, EOFError) as error:
        raise SynthesisError(f"{path.name}: not a readable WAV file ({error})") from None
    if declared == 0 or len(frames) != declared * 2:
        raise SynthesisError(f"{path.name}: {len(frames) // 2} of {declared} samples present")
    samples = array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    if max(samples) == min(samples):
        raise SynthesisError(f"{path.name}: silent")
    return sample_rate, samples


def _moved(info: AudioInfo, path: Path, voice_id: str) -> AudioInfo:
    return AudioInfo(path=path, language=info.language, duration_seconds=info.duration_seconds,
                     sample_rate=info.sample_rate, size_bytes=info.size_bytes,
                     sha256=info.sha256, rate=info.rate, voice_id=voice_id)


def _checked_or_none(path: Path, text: str, language: str, rate: int | None) -> AudioInfo | None:
    # Every send job asks for the file; reading and checking its samples each
    # time cost a loudspeaker batch a fifth of a second. A file is only ever
    # replaced whole (a new inode), so an unchanged stat is an unchanged file.
    signature = _signature(path, text, language, rate)
    if signature is None:
        return None
    if signature in _CHECKED:
        return _CHECKED[signature]
    try:
        info = check(path, text, language, rate=rate)
    except SynthesisError:
        return None  # a bad file is made again, never served
    _remember(path, text, language, rate, info)
    return info


def _signature(path: Path, text: str, language: str, rate: int | None) -> tuple | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (str(path), text, language, rate, stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _remember(path: Path, text: str, language: str, rate: int | None, info: AudioInfo) -> None:
    signature = _signature(path, text, language, rate)
    if signature is not None:
        if len(_CHECKED) >= _CHECKED_KEPT:
            _CHECKED.clear()
        _CHECKED[signature] = info


_CHECKED: dict[tuple, AudioInfo] = {}
_CHECKED_KEPT = 256


@contextlib.contextmanager
def _file_lock(path: Path):
    # The lock file stays: removing it would let a third process lock a different inode.
    descriptor = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _rate(language: str, rate: int | None) -> int:
    return int(rate or DEFAULT_RATES.get(language, REFERENCE_RATE))


def installed_voices() -> set[str]:
    """The voices this machine's espeak-ng has, by the names ``DEFAULT_VOICES`` and
    ``SPEECH_VOICES`` use (``sit/yue`` → ``yue``); empty when espeak-ng is not installed."""
    try:
        listed = subprocess.run(["espeak-ng", "--voices"], capture_output=True, text=True,
                                check=False, timeout=SYNTHESIS_TIMEOUT_SECONDS).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    names = set()
    for line in listed.splitlines()[1:]:  # Pty Language Age/Gender VoiceName File Other
        columns = line.split()
        if len(columns) >= 5:
            names.update((columns[3].lower(), columns[4].rsplit("/", 1)[-1].lower()))
    return names


def missing_voices(voices: dict[str, str]) -> dict[str, str]:
    """The languages of ``voices`` whose espeak-ng voice this machine does not have."""
    installed = installed_voices()
    return {language: voice for language, voice in voices.items() if voice not in installed}


def _voice(language: str, voice: str | None) -> str:
    voice = voice or DEFAULT_VOICES.get(language)
    if voice is None:
        raise SynthesisError(f"no voice for language {language!r}")
    if not VOICE_NAME.fullmatch(voice):
        raise SynthesisError(f"no usable voice for language {language!r} ({voice!r})")
    return voice


def _synthesize_in_subprocess(text: str, voice: str, path: Path, rate: int) -> str:
    command = [sys.executable, "-m", "messages.synthesizer", voice, str(rate),
               str(path.resolve())]
    try:
        finished = subprocess.run(command, input=text, capture_output=True, text=True,
                                  encoding="utf-8", cwd=PROJECT_ROOT, check=False,
                                  timeout=SYNTHESIS_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise SynthesisError(f"synthesizer gave no answer in {SYNTHESIS_TIMEOUT_SECONDS} s") from None
    if finished.returncode != 0:
        reason = finished.stderr.strip().splitlines()[-1:] or [f"exit {finished.returncode}"]
        raise SynthesisError(f"synthesizer failed: {reason[0]}")
    return json.loads(finished.stdout)["voice_id"]
