"""Where the run service sends its messages: MQTT, JSON lines (stdout or a file), or several at once.

The service only knows the ``Sink`` protocol; ``open_sink`` turns the ``output`` setting into a sink.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from edgepose.config import MqttConfig, SourceConfig, split_outputs
from edgepose.errors import EdgeposeError
from edgepose.publish.message import encode

log = logging.getLogger(__name__)


@runtime_checkable
class Sink(Protocol):
    """What the run service publishes through. Methods must not block on the network.

    delivery_stats(source_id) returns the sink's counters (sent, dropped, buffered...) for the stats message.
    end_source(source_id): that source has ended (the others go on); nothing more is sent for it.
    """

    def send_poses(self, source_id: str, msg: dict) -> None: ...
    def send_event(self, source_id: str, msg: dict) -> None: ...
    def send_stats(self, source_id: str, msg: dict) -> None: ...
    def send_snapshot(self, source_id: str, jpeg: bytes) -> None: ...
    def send_analytics(self, source_id: str, retained: Mapping[str, bytes]) -> None: ...
    def send_status(self, source_id: str, state: str) -> None: ...
    def delivery_stats(self, source_id: str) -> dict: ...
    def end_source(self, source_id: str) -> None: ...
    def close(self) -> None: ...


class MqttSink:
    """Sink over an ``MqttPublisher`` (see ``edgepose.publish.mqtt`` for topics and reliability)."""

    def __init__(self, publisher):
        self.publisher = publisher

    def send_poses(self, source_id: str, msg: dict) -> None:
        self.publisher.publish_poses(source_id, msg)

    def send_event(self, source_id: str, msg: dict) -> None:
        self.publisher.publish_event(source_id, msg)

    def send_stats(self, source_id: str, msg: dict) -> None:
        self.publisher.publish_stats(source_id, msg)

    def send_snapshot(self, source_id: str, jpeg: bytes) -> None:
        self.publisher.publish_snapshot(source_id, jpeg)

    def send_analytics(self, source_id: str, retained: Mapping[str, bytes]) -> None:
        self.publisher.publish_analytics(source_id, retained)

    def send_status(self, source_id: str, state: str) -> None:
        self.publisher.publish_status(source_id, state)

    def delivery_stats(self, source_id: str) -> dict:
        """The publisher's counters: poses/events sent and dropped, buffered, (dis)connects, connected."""
        return self.publisher.stats(source_id)

    def end_source(self, source_id: str) -> None:
        """Its ``offline``, so Home Assistant marks that source's entities unavailable."""
        self.publisher.close_source(source_id)

    def close(self) -> None:
        self.publisher.close()


class JsonLinesSink:
    """One JSON object per line, flushed per line: poses, events and stats messages exactly as published.

    ``"-"`` writes to stdout. A file is written as ``<name>.part`` and renamed to ``<name>`` on close(), so a
    file under the final name is always complete. Snapshots (binary JPEG) are not written.
    """

    def __init__(self, target: str | os.PathLike = "-"):
        self._lock = threading.Lock()
        self._broken = False
        if str(target) == "-":
            self.path = None
            self._stream: IO[str] = sys.stdout
            return
        self.path = Path(target)
        self._part = self.path.with_name(self.path.name + ".part")
        try:
            self._stream = open(self._part, "w", encoding="utf-8")
        except OSError as exc:
            raise EdgeposeError(
                f"cannot write output file {self.path}: {exc.strerror}; check the folder exists and is writable"
            ) from None

    def _write(self, msg: dict) -> None:
        line = encode(msg).decode() + "\n"
        with self._lock:
            if self._broken or self._stream.closed:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except BrokenPipeError:
                # The reader went away (e.g. `| head`): stop writing instead of failing the pipeline.
                self._broken = True
                log.info("output pipe closed by the reader; JSON lines output stopped")

    def send_poses(self, source_id: str, msg: dict) -> None:
        self._write(msg)

    def send_event(self, source_id: str, msg: dict) -> None:
        self._write(msg)

    def send_stats(self, source_id: str, msg: dict) -> None:
        self._write(msg)

    def send_snapshot(self, source_id: str, jpeg: bytes) -> None:
        pass  # binary; only MQTT carries snapshots

    def send_analytics(self, source_id: str, retained: Mapping[str, bytes]) -> None:
        pass  # retained topic values; the same figures are in the stats messages written here

    def send_status(self, source_id: str, state: str) -> None:
        pass  # the stats lines carry the state; status is MQTT's availability topic

    def delivery_stats(self, source_id: str) -> dict:
        return {}  # a local write either succeeds or raises: nothing to count

    def end_source(self, source_id: str) -> None:
        pass  # the file or stream is shared by every source

    def close(self) -> None:
        with self._lock:
            if self.path is None or self._stream.closed:
                return
            self._stream.close()
            os.replace(self._part, self.path)


class MultiSink:
    """Sends every message to each of several sinks (e.g. MQTT and a .jsonl log)."""

    def __init__(self, sinks: Sequence[Sink]):
        self.sinks = list(sinks)

    def _each(self, method: str, *args) -> None:
        for sink in self.sinks:
            getattr(sink, method)(*args)

    def send_poses(self, source_id: str, msg: dict) -> None:
        self._each("send_poses", source_id, msg)

    def send_event(self, source_id: str, msg: dict) -> None:
        self._each("send_event", source_id, msg)

    def send_stats(self, source_id: str, msg: dict) -> None:
        self._each("send_stats", source_id, msg)

    def send_snapshot(self, source_id: str, jpeg: bytes) -> None:
        self._each("send_snapshot", source_id, jpeg)

    def send_analytics(self, source_id: str, retained: Mapping[str, bytes]) -> None:
        self._each("send_analytics", source_id, retained)

    def send_status(self, source_id: str, state: str) -> None:
        self._each("send_status", source_id, state)

    def delivery_stats(self, source_id: str) -> dict:
        merged: dict = {}
        for sink in self.sinks:
            merged.update(sink.delivery_stats(source_id))
        return merged

    def end_source(self, source_id: str) -> None:
        self._each("end_source", source_id)

    def close(self) -> None:
        """Close every sink even if one fails; the first failure is re-raised afterwards."""
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                first = first or exc
        if first is not None:
            raise first


def open_sink(
    output: str,
    mqtt_config: MqttConfig | None = None,
    source_ids: Sequence[str] = (SourceConfig().id,),
    *,
    model: str = "EfficientHRNet",
    discovery: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> Sink:
    """The sink for an ``output`` setting: ``mqtt``, ``-``, ``file.jsonl`` or a comma list of them.

    mqtt connects now (BrokerError if the broker refuses) with one connection per id in ``source_ids``;
    model names the device in Home Assistant discovery, and discovery (source id -> (topic, payload) pairs) replaces
    the standard entities (see ``MqttPublisher``).
    """
    parts = split_outputs(output)
    if not parts:
        raise ValueError("output is empty: use mqtt, - (stdout) or a path ending in .jsonl")
    sinks: list[Sink] = []
    try:
        for part in parts:
            if part == "mqtt":
                from edgepose.publish.mqtt import MqttPublisher  # paho only when MQTT is used

                sinks.append(MqttSink(MqttPublisher(mqtt_config or MqttConfig(), source_ids, model=model,
                                                        discovery=discovery)))
            elif part == "-" or part.endswith(".jsonl"):
                sinks.append(JsonLinesSink(part))
            else:
                raise ValueError(f"unknown output {part!r}: use mqtt, - (stdout) or a path ending in .jsonl")
    except BaseException:
        MultiSink(sinks).close()
        raise
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)
