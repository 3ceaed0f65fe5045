"""A command's audio: downloaded once, kept only if its SHA-256 matches the signed one."""
from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from typing import Any, Mapping

from channels.loudspeaker import protocol


class AudioFetcher:
    """Downloads a command's audio once and keeps it only if its SHA-256 matches."""

    def __init__(self, cache_dir: str, *, timeout: float = 30.0, max_bytes: int = 100 * 2**20):
        os.makedirs(cache_dir, exist_ok=True)
        self.cache_dir = cache_dir
        self.timeout = timeout
        self.max_bytes = max_bytes

    def fetch(self, command: Mapping[str, Any]) -> str | None:
        """The local path of the verified audio, ``None`` for a text-only command."""
        url, expected = command["audio_url"], command["audio_sha256"]
        if url is None:
            return None
        path = os.path.join(self.cache_dir, f"{expected}.audio")
        if os.path.exists(path) and file_sha256(path) == expected:
            return path
        if not url.startswith(("http://", "https://")):
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, "audio_url must be http(s)", command)
        body = self._download(url, command)
        if hashlib.sha256(body).hexdigest() != expected:
            raise protocol.CommandRejected(protocol.AUDIO_HASH_MISMATCH,
                                           "downloaded audio does not match audio_sha256", command)
        descriptor, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body)
        os.replace(temporary, path)
        return path

    def _download(self, url: str, command: Mapping[str, Any]) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = response.read(self.max_bytes + 1)
        except (urllib.error.URLError, OSError) as error:
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, str(error), command) from None
        if len(body) > self.max_bytes:
            raise protocol.CommandRejected(protocol.AUDIO_UNAVAILABLE, "audio too large", command)
        return body


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()
