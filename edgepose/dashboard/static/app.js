// edgepose dashboard: one card per source found under <prefix>/+/#, drawn from what edgepose publishes.
//   snapshot (JPEG, retained)  -> the picture; skeletons from `poses` are drawn over it live
//   poses (per frame)          -> skeletons (joint confidence as opacity, track id colours) and the count chart
//   stats (retained)           -> fps, latency, drops, model;  status (retained, Last Will) -> online/offline
//   events                     -> the recent events list (entered/left, zones, lines, falls, hands up)
//   analytics (retained)       -> zones and lines drawn over the picture with their live counts
// Without snapshots (privacy mode) the skeletons are drawn on a blank canvas.
// Drawing mode: click corners of a zone (click the first corner again, or "finish", to close it) or the two ends
// of a line on the picture; the YAML for the source's config appears below it, ready to copy.
import { MqttClient } from "./mqtt-ws.js";
import { drawAnalytics, drawDraft, Drawing } from "./analytics.js";

const HISTORY_S = 120; // count chart window
const BUCKET_S = 0.5; // one chart point per half second (the max count in it), whatever the frame rate
const MAX_EVENTS = 8;
const MIN_CONF = 0.1; // as edgepose.draw's default
const STALE_S = 5; // skeletons older than this are not drawn over the picture
const UNCOUNTED_OPACITY = 0.35; // people the counting rule does not count (fragments, not confirmed yet) are drawn faint

const $ = (sel, root = document) => root.querySelector(sel);
let cfg;
const sources = new Map();

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text != null) el.textContent = text; // textContent only: topic names and payloads are untrusted
  return el;
}

function brokerUrl(raw) {
  // "ws://:9001" means: the broker is on the host this page came from (one config for every viewer).
  const url = new URL(raw.replace(/^(wss?:\/\/):/, `$1${location.hostname}:`));
  return url.toString();
}

function setBroker(state, detail) {
  const el = $("#broker");
  el.dataset.state = state;
  el.textContent = `broker ${state}` + (detail ? ` — ${detail}` : "");
}

function card(id) {
  let src = sources.get(id);
  if (src) return src;
  const root = element("section", "card");
  root.dataset.source = id;
  const head = element("header");
  head.append(element("h2", null, id), element("span", "status", "unknown"));
  const view = element("canvas", "view");
  view.width = 640;
  view.height = 360;
  const stats = element("dl", "stats");
  const fields = {};
  for (const [key, label] of [["fps", "fps"], ["latency", "latency p50"], ["inference", "inference p50"],
                              ["dropped", "dropped"], ["people", "people"], ["model", "model"]]) {
    fields[key] = element("dd", key, "–");
    stats.append(element("dt", null, label), fields[key]);
  }
  const chart = element("canvas", "chart");
  chart.width = 600;
  chart.height = 110;
  chart.dataset.points = "0";
  const events = element("ol", "events");
  const counts = element("ul", "counts");
  const drawing = new Drawing(view, () => redraw(src));
  root.append(head, view, drawing.tools, stats, counts, element("h3", null, "people over the last 2 minutes"), chart,
              element("h3", null, "recent events"), events);
  const grid = $("#sources");
  const after = [...grid.children].find((c) => c.dataset.source > id);
  grid.insertBefore(root, after || null);
  $("#empty").hidden = true;
  src = { id, root, view, chart, fields, events, counts: [], snapshot: null, poses: null, posesAt: 0, pending: false,
          countList: counts, analytics: null, drawing };
  sources.set(id, src);
  return src;
}

function redraw(src) {
  if (src.pending) return;
  src.pending = true;
  requestAnimationFrame(() => {
    src.pending = false;
    drawView(src);
    drawChart(src);
  });
}

function opacity(conf) {
  return cfg.min_opacity + (1 - cfg.min_opacity) * Math.min(Math.max(conf, 0), 1);
}

function drawView(src) {
  const canvas = src.view;
  const frame = src.poses ? src.poses.frame : null;
  // Frame resolution when known: a snapshot shrunk to fit its byte cap is scaled up, skeletons stay sharp.
  const w = frame ? frame.width : src.snapshot ? src.snapshot.width : 640;
  const h = frame ? frame.height : src.snapshot ? src.snapshot.height : 360;
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.globalAlpha = 1;
  ctx.fillStyle = "#15181d";
  ctx.fillRect(0, 0, w, h);
  if (src.snapshot) ctx.drawImage(src.snapshot, 0, 0, w, h);
  canvas.dataset.snapshot = src.snapshot ? "1" : "0";
  let drawn = 0;
  const fresh = src.poses && performance.now() - src.posesAt < STALE_S * 1000;
  if (fresh) {
    const line = Math.max(2, Math.round(Math.min(w, h) / 240));
    src.poses.people.forEach((person, i) => {
      const joints = cfg.joints.map((name) => person.keypoints[name]);
      const slot = (person.track_id >= 0 ? person.track_id : i) % cfg.palette.length;
      const weight = person.counted ? 1 : UNCOUNTED_OPACITY;
      ctx.strokeStyle = ctx.fillStyle = cfg.palette[slot];
      ctx.lineWidth = line;
      ctx.lineCap = "round";
      for (const [a, b] of cfg.skeleton) {
        const ja = joints[a], jb = joints[b];
        if (ja.confidence < MIN_CONF || jb.confidence < MIN_CONF) continue;
        ctx.globalAlpha = weight * opacity(Math.min(ja.confidence, jb.confidence));
        ctx.beginPath();
        ctx.moveTo(ja.x, ja.y);
        ctx.lineTo(jb.x, jb.y);
        ctx.stroke();
      }
      for (const j of joints) {
        if (j.confidence < MIN_CONF) continue;
        ctx.globalAlpha = weight * opacity(j.confidence);
        ctx.beginPath();
        ctx.arc(j.x, j.y, line + 1, 0, 2 * Math.PI);
        ctx.fill();
      }
      if (joints.some((j) => j.confidence >= MIN_CONF)) drawn += 1;
    });
    ctx.globalAlpha = 1;
  }
  canvas.dataset.skeletons = String(drawn);
  if (src.analytics) drawAnalytics(ctx, src.analytics, w, h);
  drawDraft(ctx, src.drawing, w, h);
  if (!src.snapshot) {
    ctx.fillStyle = "#8a919c";
    ctx.font = `${Math.round(h / 22)}px sans-serif`;
    ctx.fillText("no snapshot (privacy mode or none yet): skeletons only", 12, h - 14);
  }
}

function drawChart(src) {
  const canvas = src.chart, ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 22;
  ctx.clearRect(0, 0, w, h);
  const now = Date.now() / 1000;
  const points = src.counts.filter(([t]) => t >= now - HISTORY_S);
  src.counts = points;
  canvas.dataset.points = String(points.length);
  const top = Math.max(1, ...points.map(([, n]) => n));
  const x = (t) => pad + ((t - (now - HISTORY_S)) / HISTORY_S) * (w - pad - 4);
  const y = (n) => h - pad + 4 - (n / top) * (h - pad - 4);
  ctx.strokeStyle = "#39404a";
  ctx.fillStyle = "#8a919c";
  ctx.font = "11px sans-serif";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad, y(top));
  ctx.lineTo(pad, y(0));
  ctx.lineTo(w - 4, y(0));
  ctx.stroke();
  ctx.fillText(String(top), 4, y(top) + 4);
  ctx.fillText("0", 8, y(0) + 4);
  ctx.fillText(`-${HISTORY_S} s`, pad, h - 4);
  ctx.fillText("now", w - 28, h - 4);
  if (!points.length) return;
  ctx.strokeStyle = "#59a14f";
  ctx.lineWidth = 2;
  ctx.beginPath();
  points.forEach(([t, n], i) => {
    // A step line: the count holds until the next point.
    if (i === 0) ctx.moveTo(x(t), y(n));
    else ctx.lineTo(x(t), y(points[i - 1][1]));
    ctx.lineTo(x(t), y(n));
  });
  ctx.lineTo(x(Math.min(now, points[points.length - 1][0] + BUCKET_S)), y(points[points.length - 1][1]));
  ctx.stroke();
}

function addCount(src, t, count) {
  const last = src.counts[src.counts.length - 1];
  if (last && t - last[0] < BUCKET_S) last[1] = Math.max(last[1], count);
  else src.counts.push([t, count]);
}

function fmt(value, unit = "") {
  return value == null ? "–" : `${Math.round(value * 10) / 10}${unit}`;
}

const handlers = {
  status(src, payload) {
    const state = new TextDecoder().decode(payload).trim() || "unknown";
    const el = $(".status", src.root);
    el.textContent = state;
    el.dataset.status = state;
    src.root.classList.toggle("offline", state !== "online");
  },
  stats(src, payload) {
    const s = JSON.parse(new TextDecoder().decode(payload));
    const lat = s.latency_ms || {};
    src.fields.fps.textContent = fmt(s.fps);
    src.fields.latency.textContent = fmt(lat.total && lat.total.p50, " ms");
    src.fields.inference.textContent = fmt(lat.inference && lat.inference.p50, " ms");
    src.fields.dropped.textContent = s.dropped_frames == null ? "–" : String(s.dropped_frames);
    if (src.poses == null && s.people != null) src.fields.people.textContent = String(s.people);
    src.fields.model.textContent = [s.model, s.device].filter(Boolean).join(" on ") || "–";
    src.fields.model.title = `uptime ${fmt(s.uptime_s, " s")}`;
  },
  poses(src, payload) {
    const msg = JSON.parse(new TextDecoder().decode(payload));
    src.poses = msg;
    src.posesAt = performance.now();
    // `count` is edgepose's counting rule (docs/mqtt.md, "Who counts"), the same number as the people topic.
    src.fields.people.textContent = String(msg.count);
    addCount(src, msg.timestamp_ns / 1e9, msg.count);
    redraw(src);
  },
  async snapshot(src, payload) {
    try {
      src.snapshot = await createImageBitmap(new Blob([payload], { type: "image/jpeg" }));
    } catch (err) {
      console.warn(`snapshot of ${src.id} is not a readable JPEG`, err);
      return;
    }
    redraw(src);
  },
  analytics(src, payload) {
    const msg = JSON.parse(new TextDecoder().decode(payload));
    src.analytics = msg;
    const items = [
      ...msg.zones.map((z) => [`zone ${z.name}`, `${z.count} ${z.count === 1 ? "person" : "people"}` +
                                                 (z.crowded ? " (crowded)" : "")]),
      ...msg.lines.map((l) => [`line ${l.name}`, `in ${l.in} · out ${l.out}`]),
      ...Object.entries(msg.rules).map(([rule, n]) => [rule.replace("_", " "), n ? `ON (${n})` : "off"]),
    ];
    src.countList.replaceChildren(...items.map(([label, value]) => {
      const li = element("li", null);
      li.append(element("span", "label", label), element("span", "value", value));
      return li;
    }));
    redraw(src);
  },
  events(src, payload) {
    const ev = JSON.parse(new TextDecoder().decode(payload));
    const stamp = ev.timestamp_ns != null ? ev.timestamp_ns / 1e6 : Date.parse(ev.timestamp);
    const time = new Date(stamp).toLocaleTimeString();
    const who = ev.track_id != null ? `#${ev.track_id} ` : "";
    const where = [ev.zone, ev.line, ev.direction].filter(Boolean).join(" ");
    const what = `${time}  ${who}${String(ev.event).replace("person_", "").replace("_", " ")}` +
      (where ? ` ${where}` : "") + (ev.count != null ? ` (${ev.count} in zone)` : "") +
      (ev.duration_s != null ? ` after ${fmt(ev.duration_s, " s")}` : "");
    const item = element("li", ev.event, what);
    src.events.prepend(item);
    while (src.events.children.length > MAX_EVENTS) src.events.lastChild.remove();
  },
};

function onMessage(topic, payload) {
  // <prefix>/<source_id>/<kind>; the prefix may itself contain slashes.
  const rest = topic.slice(cfg.topic_prefix.length + 1).split("/");
  if (rest.length !== 2 || !(rest[1] in handlers)) return;
  if (payload.length === 0) return; // a cleared retained message
  try {
    handlers[rest[1]](card(rest[0]), payload);
  } catch (err) {
    console.warn(`bad ${rest[1]} message from ${rest[0]}`, err);
  }
}

async function main() {
  cfg = await (await fetch("config.json", { cache: "no-store" })).json();
  $("#prefix").textContent = `${cfg.topic_prefix}/+/#`;
  const client = new MqttClient(brokerUrl(cfg.mqtt_ws), {
    username: cfg.username,
    password: cfg.password,
    topics: [`${cfg.topic_prefix}/+/#`],
    onMessage,
    onState: setBroker,
  });
  client.connect();
  // Keep charts moving and let stale skeletons disappear when a source goes quiet.
  setInterval(() => sources.forEach(redraw), 1000);
}

main().catch((err) => setBroker("error", err.message));
