"""The synthesizer process: the only place a pyttsx3 engine exists (``messages.audio`` says why).

``messages.audio.synthesize`` runs ``python -m messages.synthesizer VOICE RATE PATH`` with
the text on stdin, and reads the voice the engine used, as JSON, from stdout.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
from pathlib import Path

from messages.audio import SYNTHESIS_TIMEOUT_SECONDS, VOICE_NAME, SynthesisError


def _run_engine(text: str, voice: str, path: Path, rate: int) -> str:
    import pyttsx3

    engine = pyttsx3.init("espeak")
    voice_id = _voice_id(engine, voice)
    finished = threading.Event()
    engine.connect("finished-utterance", lambda name, completed: finished.set())
    engine.setProperty("voice", voice_id)
    engine.setProperty("rate", rate)
    engine.save_to_file(text, str(path))
    engine.runAndWait()
    if not finished.wait(SYNTHESIS_TIMEOUT_SECONDS):
        raise SynthesisError("espeak-ng never reported the utterance finished")
    selected = engine.getProperty("voice")
    if selected != voice_id:
        raise SynthesisError(f"asked espeak-ng for voice {voice_id}, it used {selected}")
    return selected


def _voice_id(engine, name: str) -> str:
    for voice in engine.getProperty("voices"):
        if voice.id.rsplit("/", 1)[-1] == name:
            return voice.id
    raise SynthesisError(f"espeak-ng has no voice {name!r}; install Debian's espeak-ng")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Synthesize stdin to a WAV file.")
    parser.add_argument("voice", help="an espeak-ng voice, e.g. cmn-latn-pinyin, yue, en-us")
    parser.add_argument("rate", type=int)
    parser.add_argument("path", type=Path)
    arguments = parser.parse_args(argv)
    if not VOICE_NAME.fullmatch(arguments.voice):
        parser.error(f"{arguments.voice!r} is not a voice name")
    text = sys.stdin.buffer.read().decode("utf-8")
    # pyttsx3 prints "Audio saved to ..." on stdout, which carries this process's answer.
    with contextlib.redirect_stdout(sys.stderr):
        voice_id = _run_engine(text, arguments.voice, arguments.path, arguments.rate)
    print(json.dumps({"voice_id": voice_id}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
