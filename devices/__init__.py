"""Programs that run beside the gateway, not inside it.

``controller`` is the reference loudspeaker controller, the program on a
village board; ``broker`` the embedded MQTT broker for the quickstart and
demos. They share only the wire contract, ``channels.loudspeaker.protocol``,
with the gateway, and import nothing else of the project: a board needs
paho-mqtt and cryptography, not Flask or a database.
"""
