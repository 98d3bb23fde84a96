// Zones and lines over the picture, and the drawing mode that writes their YAML.
// Geometry is normalised (0..1 of the frame's width and height), as in edgepose's config.

const ZONE = "#f28e2b";
const LINE = "#4e79a7";
const DRAFT = "#edc948";
const DIGITS = 3;

function label(ctx, text, x, y, color) {
  ctx.font = "bold 15px sans-serif";
  const w = ctx.measureText(text).width + 8;
  ctx.globalAlpha = 0.75;
  ctx.fillStyle = "#0e1013";
  ctx.fillRect(x, y - 15, w, 20);
  ctx.globalAlpha = 1;
  ctx.fillStyle = color;
  ctx.fillText(text, x + 4, y);
}

function path(ctx, points, w, h, close) {
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x * w, y * h) : ctx.moveTo(x * w, y * h)));
  if (close) ctx.closePath();
}

// The "in" side of a line a->b is on the right of someone walking from a to b in the picture (y grows down),
// or the left with in_side: left; the arrow points that way.
function inArrow(ctx, [[ax, ay], [bx, by]], inSide, w, h) {
  const mx = ((ax + bx) / 2) * w, my = ((ay + by) / 2) * h;
  let nx = -(by - ay) * h, ny = (bx - ax) * w;
  const len = Math.hypot(nx, ny) || 1;
  const s = (inSide === "left" ? -1 : 1) * Math.min(w, h) * 0.06 / len;
  nx *= s;
  ny *= s;
  ctx.beginPath();
  ctx.moveTo(mx, my);
  ctx.lineTo(mx + nx, my + ny);
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(mx + nx * 1.4, my + ny * 1.4);
  ctx.lineTo(mx + nx - ny * 0.4, my + ny + nx * 0.4);
  ctx.lineTo(mx + nx + ny * 0.4, my + ny - nx * 0.4);
  ctx.closePath();
  ctx.fill();
}

export function drawAnalytics(ctx, msg, w, h) {
  const width = Math.max(2, Math.round(Math.min(w, h) / 180));
  ctx.lineWidth = width;
  ctx.setLineDash([]);
  for (const z of msg.zones) {
    ctx.strokeStyle = ctx.fillStyle = ZONE;
    path(ctx, z.polygon, w, h, true);
    ctx.globalAlpha = z.count ? 0.28 : 0.12;
    ctx.fill();
    ctx.globalAlpha = 1;
    ctx.stroke();
    const [x, y] = z.polygon.reduce(([a, b], [px, py]) => (py < b ? [px, py] : [a, b]), [0, 2]);
    label(ctx, `${z.name}: ${z.count}`, x * w + 4, Math.max(18, y * h - 6), ZONE);
  }
  for (const l of msg.lines) {
    ctx.strokeStyle = ctx.fillStyle = LINE;
    path(ctx, l.points, w, h, false);
    ctx.stroke();
    inArrow(ctx, l.points, l.in_side, w, h);
    const [x, y] = l.points[1]; // the zone labels sit at the top; this one at the line's second end
    label(ctx, `${l.name}: in ${l.in} / out ${l.out}`, Math.min(x * w + 6, w - 200), Math.min(h - 8, y * h), LINE);
  }
}

export function drawDraft(ctx, drawing, w, h) {
  if (!drawing.points.length) return;
  ctx.strokeStyle = ctx.fillStyle = DRAFT;
  ctx.lineWidth = Math.max(2, Math.round(Math.min(w, h) / 240));
  ctx.setLineDash([8, 6]);
  path(ctx, drawing.points, w, h, drawing.done && drawing.kind === "zone");
  ctx.stroke();
  ctx.setLineDash([]);
  for (const [x, y] of drawing.points) {
    ctx.beginPath();
    ctx.arc(x * w, y * h, 5, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function round(v) {
  return Number(Math.min(1, Math.max(0, v)).toFixed(DIGITS));
}

function pointText([x, y]) {
  return `[${x.toFixed(DIGITS)}, ${y.toFixed(DIGITS)}]`;
}

// Click points on the view; the YAML goes into a read-only text box with a copy button.
export class Drawing {
  constructor(canvas, changed) {
    this.canvas = canvas;
    this.changed = changed;
    this.kind = null;
    this.points = [];
    this.done = false;
    this.count = 0;
    const tools = document.createElement("div");
    tools.className = "draw";
    const button = (text, cls, onclick) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = cls;
      b.textContent = text;
      b.addEventListener("click", onclick);
      tools.append(b);
      return b;
    };
    button("draw zone", "draw-zone", () => this.start("zone"));
    button("draw line", "draw-line", () => this.start("line"));
    this.finishButton = button("finish", "draw-finish", () => this.finish());
    button("clear", "draw-clear", () => this.start(null));
    this.copyButton = button("copy YAML", "draw-copy", () => this.copy());
    this.hint = document.createElement("span");
    this.hint.className = "draw-hint";
    this.yaml = document.createElement("textarea");
    this.yaml.className = "yaml";
    this.yaml.readOnly = true;
    this.yaml.rows = 5;
    tools.append(this.hint, this.yaml);
    this.tools = tools;
    canvas.addEventListener("click", (e) => this.click(e));
    this.refresh();
  }

  start(kind) {
    this.kind = kind;
    this.points = [];
    this.done = false;
    this.canvas.classList.toggle("drawing", kind != null);
    this.update();
  }

  click(e) {
    if (this.kind == null || this.done) return;
    const r = this.canvas.getBoundingClientRect();
    const p = [round((e.clientX - r.left) / r.width), round((e.clientY - r.top) / r.height)];
    const first = this.points[0];
    const near = first && Math.hypot((p[0] - first[0]) * r.width, (p[1] - first[1]) * r.height) < 10;
    if (this.kind === "zone" && this.points.length >= 3 && near) return this.finish();
    this.points.push(p);
    if (this.kind === "line" && this.points.length === 2) return this.finish();
    this.update();
  }

  finish() {
    const enough = this.kind === "line" ? 2 : 3;
    if (this.kind == null || this.points.length < enough) return;
    this.done = true;
    this.count += 1;
    this.update();
  }

  update() {
    this.refresh();
    this.changed();
  }

  // The tools and the text box for the current state (the picture is redrawn by the card).
  refresh() {
    const need = this.kind === "line" ? 2 : 3;
    this.finishButton.disabled = this.kind !== "zone" || this.done || this.points.length < 3;
    this.copyButton.disabled = !this.done;
    if (this.kind == null) this.hint.textContent = "draw a zone or a line on the picture to get its YAML";
    else if (!this.done) {
      this.hint.textContent = this.kind === "zone"
        ? `click the corners in order (${this.points.length} so far); click the first again or "finish"`
        : `click the line's two ends (${this.points.length} of ${need})`;
    } else this.hint.textContent = "paste under the source in your config (edgepose config check FILE)";
    this.yaml.hidden = !this.done;
    this.yaml.value = this.done ? this.text() : "";
    this.canvas.dataset.draft = JSON.stringify({ kind: this.kind, points: this.points, done: this.done });
  }

  text() {
    const points = this.points.map(pointText).join(", ");
    if (this.kind === "line") {
      return `lines:\n  - name: line${this.count}\n    points: [${points}]\n`;
    }
    return `zones:\n  - name: zone${this.count}\n    polygon: [${points}]\n`;
  }

  async copy() {
    try {
      await navigator.clipboard.writeText(this.yaml.value);
    } catch {
      // http:// pages have no async clipboard; the old way still works from a click.
      this.yaml.select();
      document.execCommand("copy");
    }
    this.hint.textContent = "copied";
  }
}
