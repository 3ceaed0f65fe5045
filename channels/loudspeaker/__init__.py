"""Village loudspeakers (村村响) over MQTT.

``protocol`` is the signed wire contract (with ``protocol.transport``, the
broker URL and paho client setup), ``channel`` the gateway's sender and
``acks`` the listener for what devices report. The programs on the other end
of the wire, the reference controller and the embedded quickstart broker,
live in ``devices/``. Nothing is imported here, so a controller loads only
what it needs.
"""
