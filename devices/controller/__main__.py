"""The controller's command line: ``python -m devices.controller --help``."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from typing import Sequence

from channels.loudspeaker import protocol
from devices.controller.client import Controller, log
from devices.controller.players import CommandPlayer, Player, SinkPlayer


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devices.controller",
                                     description="Tongbao reference loudspeaker controller")
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--mqtt-url", default=os.environ.get("TONGBAO_MQTT_URL"),
                        help="mqtt[s]://user:password@host:port (or env TONGBAO_MQTT_URL, "
                             "which keeps the password out of the process list)")
    parser.add_argument("--public-key", action="append", required=True,
                        help="gateway public key file (PEM or base64); repeat during a key rotation")
    parser.add_argument("--ack-key", required=True,
                        help="file holding this device's ack key (the line printed by "
                             "'speakers add' or 'speakers rekey'); every ack is signed with it")
    parser.add_argument("--state-dir", required=True)
    output = parser.add_mutually_exclusive_group(required=True)
    output.add_argument("--player", help='command playing a file, e.g. "aplay -q {file}"')
    output.add_argument("--sink-dir", help="write what would be played to DIR/played.jsonl")
    parser.add_argument("--tts", help='command speaking a text-only command, e.g. "espeak-ng -f {text_file}"')
    parser.add_argument("--sink-seconds", type=float, default=0.0, help="how long each sink play lasts")
    parser.add_argument("--fetch-timeout", type=float, default=30.0)
    parser.add_argument("--max-play-seconds", type=float, default=1800.0)
    parser.add_argument("--max-command-bytes", type=int, default=protocol.MAX_COMMAND_BYTES,
                        help="larger payloads are refused before they are parsed")
    args = parser.parse_args(argv)
    if not args.mqtt_url:
        parser.error("--mqtt-url or TONGBAO_MQTT_URL is required")
    return args


def build(args: argparse.Namespace) -> Controller:
    keys = []
    for path in args.public_key:
        with open(path, "rb") as handle:
            keys.append(protocol.load_public_key(handle.read()))
    if args.sink_dir:
        player: Player = SinkPlayer(args.sink_dir, args.sink_seconds)
    else:
        player = CommandPlayer(args.player, args.tts, max_seconds=args.max_play_seconds)
    with open(args.ack_key, "rb") as handle:
        ack_key = protocol.SigningKey.from_text(handle.read())
    return Controller(args.device_id, args.mqtt_url, keys, args.state_dir, player,
                      ack_key=ack_key, fetch_timeout=args.fetch_timeout,
                      max_command_bytes=args.max_command_bytes)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    controller = build(parse_args(argv))
    finished = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: finished.set())
    controller.start()
    log.info("controller %s listening on %s", controller.device_id, controller.commands_topic)
    finished.wait()
    controller.stop()


if __name__ == "__main__":
    main()
