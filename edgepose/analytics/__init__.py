"""Analytics: zones, line crossings, dwell, crowds, falls and raised hands, from tracked poses.

A stage beside ``track`` and ``publish`` (it imports neither): it reads the ``Poses`` contract with track ids and
returns plain data, which the service hands to the publishers.

    analytics = Analytics(source_cfg.zones, source_cfg.lines, source_cfg.rules)
    events = analytics.update(poses, frame.size, frame.clock_ns, frame.wall_time_ns, left=update.left)
    analytics.counters()   # {"zones": {name: {"count", "crowded"}}, "lines": {name: {"in", "out"}}, ...}
"""

from edgepose.analytics.engine import Analytics, Event
from edgepose.analytics.pose import body_point, torso

__all__ = ["Analytics", "Event", "body_point", "torso"]
