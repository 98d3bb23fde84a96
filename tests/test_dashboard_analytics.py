"""Dashboard analytics in real headless Chromium: zones and lines drawn over the snapshot with live counts from the
real publisher, the analytics events in the list, and the drawing mode writing YAML that `config check` accepts.

Screenshot: test-artifacts/dashboard-analytics.png.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import yaml
from test_dashboard import (  # noqa: F401 - fixtures
    ARTIFACTS,
    browser,
    canvas_pixel,
    coco_person,
    dashboard_cli,
    hex_rgb,
    ws_broker,
)

from edgepose.analytics import Analytics
from edgepose.config import MqttConfig, SourceConfig
from edgepose.publish import pose_message
from edgepose.publish.analytics import analytics_event_message, retained_topics
from edgepose.publish.mqtt import MqttPublisher
from edgepose.publish.snapshot import encode_jpeg
from edgepose.types import Frame, Poses

W, H = 640, 360
ZONE_COLOR, LINE_COLOR = "#f28e2b", "#4e79a7"  # as analytics.js draws them


def card_analytics(drv, source: str) -> dict:
    return drv.execute_script("""
        const c = document.querySelector(`.card[data-source='${arguments[0]}']`);
        if (!c) return null;
        return {
          counts: [...c.querySelectorAll('.counts li')].map(li => li.textContent),
          events: [...c.querySelectorAll('.events li')].map(li => li.textContent),
          draft: JSON.parse(c.querySelector('.view').dataset.draft || 'null'),
          yaml: c.querySelector('.yaml').value,
        };""", source)


def wait(drv, source, predicate, timeout, what):
    deadline = time.monotonic() + timeout
    state = card_analytics(drv, source)
    while not (state and predicate(state)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; card: {state}")
        time.sleep(0.2)
        state = card_analytics(drv, source)
    return state


def click_at(drv, element, fx: float, fy: float) -> None:
    """Click ``element`` at a fraction (fx, fy) of its on-screen size."""
    from selenium.webdriver.common.action_chains import ActionChains

    rect = drv.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", element)
    ActionChains(drv).move_to_element_with_offset(element, fx * rect[0] - rect[0] / 2,
                                                  fy * rect[1] - rect[1] / 2).click().perform()


@pytest.mark.slow
def test_zones_lines_counts_events_and_drawing_mode(browser, ws_broker, dashboard_cli, coco_mini):  # noqa: F811
    src = SourceConfig(id="shop", zones=[{"name": "counter", "polygon": [[0.55, 0.1], [0.95, 0.1], [0.95, 0.95],
                                                                         [0.55, 0.95]]}],
                       lines=[{"name": "door", "points": [[0.4, 0.05], [0.4, 0.95]]}])
    analytics = Analytics(src.zones, src.lines, src.rules)
    person, _ = coco_person(coco_mini, W, H)
    feet = person.xy[0, 15:17].mean(axis=0)
    # A real COCO person walks right across the door line, back left, then right again into the counter zone.
    path = np.concatenate([np.linspace(0.1, 0.7, 30), np.linspace(0.7, 0.2, 25), np.linspace(0.2, 0.75, 30)])
    config = MqttConfig(url=ws_broker.url)
    with MqttPublisher(config, ["shop"]) as pub:
        browser.get(dashboard_cli)
        pub.publish_snapshot("shop", encode_jpeg(np.full((H, W, 3), 90, np.uint8)))
        t0 = time.time_ns()
        for k, x in enumerate(path):
            xy = person.xy + np.array([x * W - feet[0], 0], np.float32)
            poses = Poses(xy, person.conf, person.score, [3])
            now = t0 + k * 100_000_000
            frame = Frame(np.zeros((H, W, 3), np.uint8), k, now, now)
            for event in analytics.update(poses, (W, H), now, now):
                pub.publish_event("shop", analytics_event_message(source_id="shop", event=event, frame_index=k,
                                                                  frame_size=(W, H)))
            pub.publish_poses("shop", pose_message(source_id="shop", frame=frame, poses=poses, model="H-4",
                                                   inference_ms=20, total_ms=30))
        pub.publish_analytics("shop", retained_topics(src, analytics.counters()))
        assert analytics.counters()["lines"]["door"] == {"in": 1, "out": 2}
        state = wait(browser, "shop", lambda s: "line doorin 1 · out 2" in s["counts"], 20, "the counts")
        assert "zone counter1 person" in state["counts"]
        assert any("#3 line crossed door out" in e for e in state["events"])
        assert any("#3 zone entered counter" in e for e in state["events"])
        # The zone's and the line's outlines are drawn over the picture, in frame pixels.
        assert canvas_pixel(browser, "shop", 0.75 * W, 0.95 * H)[:3] == hex_rgb(ZONE_COLOR)
        assert canvas_pixel(browser, "shop", 0.4 * W, 0.7 * H)[:3] == hex_rgb(LINE_COLOR)

        # Drawing mode: a line by two clicks, then a zone by four corners and a click back on the first.
        card = browser.find_element("css selector", ".card[data-source='shop']")
        view = card.find_element("css selector", ".view")
        card.find_element("css selector", ".draw-line").click()
        click_at(browser, view, 0.2, 0.1)
        click_at(browser, view, 0.3, 0.9)
        drawn = yaml.safe_load(wait(browser, "shop", lambda s: s["draft"]["done"], 5, "a drawn line")["yaml"])
        assert np.allclose(drawn["lines"][0]["points"], [[0.2, 0.1], [0.3, 0.9]], atol=0.01), drawn
        card.find_element("css selector", ".draw-zone").click()
        for fx, fy in ((0.05, 0.2), (0.35, 0.2), (0.35, 0.6), (0.05, 0.6), (0.051, 0.201)):
            click_at(browser, view, fx, fy)
        drawn = yaml.safe_load(wait(browser, "shop", lambda s: s["draft"]["done"], 5, "a drawn zone")["yaml"])
        assert np.allclose(drawn["zones"][0]["polygon"], [[0.05, 0.2], [0.35, 0.2], [0.35, 0.6], [0.05, 0.6]],
                           atol=0.01), drawn
        # What the page wrote is valid source configuration.
        assert SourceConfig(id="shop", **drawn).zones[0].name == "zone2"
        ARTIFACTS.mkdir(exist_ok=True)
        assert browser.save_screenshot(str(ARTIFACTS / "dashboard-analytics.png"))
