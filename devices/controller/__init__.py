"""The reference loudspeaker controller: what runs on the board beside the amplifier.

    python -m devices.controller --device-id cun-01 \\
        --mqtt-url mqtt://cun-01:secret@broker:1883 --public-key gateway.pub \\
        --ack-key ack.key --state-dir /var/lib/tongbao-speaker --player "aplay -q {file}"

It needs only paho-mqtt, cryptography and the standard library. It acts on a
command only if the gateway's signature verifies, it has not expired, and its
sequence is above every sequence accepted before (kept on disk, so a restart
does not reopen old commands). A command it already accepted, redelivered by
the broker or re-sent by the gateway, is acknowledged again and not replayed.
It refuses a payload over ``--max-command-bytes`` before parsing it, and signs
every ack with its own key (``--ack-key``, printed by ``speakers add``), so the
gateway can tell its acks from forged ones.
See ``docs/loudspeaker-protocol.md``.

Its parts: ``client`` (the MQTT client: commands in, acks and presence out),
``state`` (what was accepted, kept on disk against replays), ``playback`` (the
priority queue of plays), ``audio`` (download and hash check), ``players``
(what makes the sound) and ``__main__`` (the command line).
"""
