"""Village loudspeakers (村村响) over MQTT.

``protocol`` is the signed wire contract, ``transport`` the broker URL and
paho client setup, ``channel`` the gateway's sender, ``acks`` the listener for
what devices report, ``controller`` the reference device program and
``broker`` the embedded quickstart broker. Nothing is imported here, so the
controller loads only what it needs.
"""
