// A small MQTT 3.1.1 subscriber over WebSockets, enough for a dashboard: CONNECT (optional user/password),
// SUBSCRIBE, receiving PUBLISH at QoS 0/1/2 with the matching acknowledgements, PINGREQ keepalive, and
// reconnection with exponential backoff. It never publishes. Packet layout: MQTT 3.1.1 (OASIS), section 3.

const CONNECT = 1, CONNACK = 2, PUBLISH = 3, PUBACK = 4, PUBREC = 5, PUBREL = 6, PUBCOMP = 7;
const SUBSCRIBE = 8, SUBACK = 9, PINGREQ = 12, PINGRESP = 13, DISCONNECT = 14;

const CONNACK_ERRORS = {
  1: "the broker does not accept MQTT 3.1.1",
  2: "the broker rejected the client id",
  3: "the broker is unavailable",
  4: "bad user name or password",
  5: "not authorized",
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function mqttString(text) {
  const bytes = encoder.encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

function packet(type, flags, body) {
  // Fixed header: type and flags, then the remaining length as a base-128 varint.
  const head = [(type << 4) | flags];
  let n = body.length;
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    head.push(n > 0 ? digit | 0x80 : digit);
  } while (n > 0);
  const out = new Uint8Array(head.length + body.length);
  out.set(head, 0);
  out.set(body, head.length);
  return out;
}

export class MqttClient {
  /**
   * url: ws:// or wss:// URL of the broker's websockets listener.
   * options: {username, password, keepalive (s), topics: [filter, ...], qos (max requested, default 1),
   *           onMessage(topic, payload: Uint8Array, {retain, qos}), onState(state, detail)}.
   * States: "connecting", "connected", "disconnected" (detail: why and when the next try is), "refused".
   */
  constructor(url, options) {
    this.url = url;
    this.opt = { keepalive: 30, qos: 1, topics: [], onMessage() {}, onState() {}, ...options };
    this.clientId = "edgepose-dash-" + Math.random().toString(16).slice(2, 10);
    this.backoff = 1;
    this.nextId = 1;
    this.buffer = new Uint8Array(0);
    this.closed = false;
  }

  connect() {
    this.closed = false;
    this.opt.onState("connecting", this.url);
    let ws;
    try {
      ws = new WebSocket(this.url, ["mqtt"]);
    } catch (err) {
      this.opt.onState("refused", `bad broker URL ${this.url}: ${err.message}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.buffer = new Uint8Array(0);
    ws.onopen = () => ws.send(this.connectPacket());
    ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
    ws.onclose = () => this.lost(ws, "connection closed");
    ws.onerror = () => this.lost(ws, `cannot reach ${this.url}`);
  }

  close() {
    this.closed = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.retryTimer);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(packet(DISCONNECT, 0, []));
    if (this.ws) this.ws.close();
  }

  connectPacket() {
    const { username, password, keepalive } = this.opt;
    let flags = 0x02; // clean session: retained messages bring the current state back on every connect
    if (username != null) flags |= 0x80;
    if (username != null && password != null) flags |= 0x40;
    const body = [...mqttString("MQTT"), 4, flags, keepalive >> 8, keepalive & 0xff, ...mqttString(this.clientId)];
    if (username != null) body.push(...mqttString(username));
    if (username != null && password != null) body.push(...mqttString(password));
    return packet(CONNECT, 0, body);
  }

  lost(ws, why) {
    if (ws !== this.ws) return; // an old socket's late event
    this.ws = null;
    clearInterval(this.pingTimer);
    if (this.closed) return;
    if (this.refusal) {
      this.opt.onState("refused", this.refusal);
      return; // retrying with the same credentials would only be refused again
    }
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 30);
    this.opt.onState("disconnected", `${why}; retrying in ${delay} s`);
    this.retryTimer = setTimeout(() => this.connect(), delay * 1000);
  }

  receive(chunk) {
    // WebSocket messages need not align with MQTT packets: keep the tail for the next message.
    const joined = new Uint8Array(this.buffer.length + chunk.length);
    joined.set(this.buffer, 0);
    joined.set(chunk, this.buffer.length);
    let pos = 0;
    while (joined.length - pos >= 2) {
      let length = 0, mult = 1, i = pos + 1, complete = false;
      for (; i < joined.length && i < pos + 5; i++) {
        length += (joined[i] & 0x7f) * mult;
        mult *= 128;
        if (!(joined[i] & 0x80)) { complete = true; i++; break; }
      }
      if (!complete || joined.length - i < length) break;
      this.handle(joined[pos] >> 4, joined[pos] & 0x0f, joined.subarray(i, i + length));
      pos = i + length;
    }
    this.buffer = joined.slice(pos);
  }

  send(bytes) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes);
  }

  handle(type, flags, body) {
    switch (type) {
      case CONNACK: {
        const code = body[1];
        if (code !== 0) {
          this.refusal = `broker refused the connection: ${CONNACK_ERRORS[code] || "code " + code}`;
          this.ws.close();
          return;
        }
        this.backoff = 1;
        this.awaitingPong = false;
        this.pingTimer = setInterval(() => this.ping(), (this.opt.keepalive * 1000) / 2);
        this.subscribe();
        this.opt.onState("connected", this.url);
        break;
      }
      case PUBLISH: {
        const qos = (flags >> 1) & 3;
        const topicLength = (body[0] << 8) | body[1];
        const topic = decoder.decode(body.subarray(2, 2 + topicLength));
        let start = 2 + topicLength;
        if (qos > 0) {
          const id = [body[start], body[start + 1]];
          start += 2;
          this.send(packet(qos === 1 ? PUBACK : PUBREC, 0, id));
        }
        this.opt.onMessage(topic, body.slice(start), { retain: Boolean(flags & 1), qos });
        break;
      }
      case PUBREL:
        this.send(packet(PUBCOMP, 0, [body[0], body[1]]));
        break;
      case SUBACK:
        for (const code of body.subarray(2)) {
          if (code === 0x80) this.opt.onState("refused", "the broker refused the subscription (check its ACL)");
        }
        break;
      case PINGRESP:
        this.awaitingPong = false;
        break;
      default:
        break; // PUBACK/PUBCOMP/UNSUBACK never come: this client does not publish or unsubscribe
    }
  }

  subscribe() {
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffff) + 1;
    const body = [id >> 8, id & 0xff];
    for (const filter of this.opt.topics) body.push(...mqttString(filter), this.opt.qos);
    this.send(packet(SUBSCRIBE, 0x02, body));
  }

  ping() {
    if (this.awaitingPong) {
      // No answer for half a keepalive: the connection is dead even if the socket has not noticed.
      if (this.ws) this.ws.close();
      return;
    }
    this.awaitingPong = true;
    this.send(packet(PINGREQ, 0, []));
  }
}
