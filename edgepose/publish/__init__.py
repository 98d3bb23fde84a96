"""Publishing: message builders, the poses JSON Schema, sinks (MQTT, JSON lines) and the metrics endpoint.

paho-mqtt is imported only when an MQTT sink is opened (``edgepose.publish.mqtt``).
"""

from edgepose.publish.message import event_message, pose_message, stats_message, validate_pose_message
from edgepose.publish.metrics import MetricsServer
from edgepose.publish.sinks import JsonLinesSink, MqttSink, MultiSink, Sink, open_sink

__all__ = [
    "JsonLinesSink",
    "MetricsServer",
    "MqttSink",
    "MultiSink",
    "Sink",
    "event_message",
    "open_sink",
    "pose_message",
    "stats_message",
    "validate_pose_message",
]
