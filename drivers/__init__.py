"""Device drivers: read pins or a camera, emit events, perform actions. Nothing else.

Drivers know nothing of MQTT, crypto or SQLite; they import only `protocol.events`.
"""
