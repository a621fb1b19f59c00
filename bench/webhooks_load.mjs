// bench/webhooks_load.mjs — a fixed-rate, open-loop load for bench/webhooks.sh
// (what wrk2 does; Debian has no wrk2): RATE signed deliveries per second for
// SECONDS over CONNS keep-alive connections, each latency recorded.
//
//   node bench/webhooks_load.mjs PORT BODY-FILE SIGNATURE RUN-ID RATE SECONDS CONNS
//
// Request i is due at t0 + i/RATE whatever happened to the ones before it
// (open loop: a slow answer does not slow the senders). A due request goes out
// on an idle connection, or waits for one. Its latency is counted
//   - from the time it was due when it had to wait for a connection (all
//     CONNS busy with earlier, slow answers): that wait is the server's doing,
//     and counting it avoids coordinated omission, as wrk2 does;
//   - from its write otherwise: the client's own lag (a 1 ms timer drives the
//     schedule; on a busy machine the client itself is late) is not the
//     server's.
// The latency from the due time for every request (due_*) and the client's
// lag (lag_*: write - due, for requests that found a free connection) are
// printed too.
//
// Requests are written on raw sockets (no HTTP client library): the head with
// a unique X-GitHub-Delivery (RUN-ID-i), then the body; answers are read by
// Content-Length. After the last request is due, it waits up to 30 s for the
// answers still out. One line on stdout:
//   LOAD sent=N answered=N ok=N non2xx=N errors=N codes=202:N,... rate=R
//        p50= p99= p999= max= due_p50= due_p99= lag_p50= lag_p99= waited_for_conn=N
// ok = 2xx answers; errors = requests that got no answer (connection lost or
// 30 s passed); rate = answers per second; p*, max = the latency above, ms; due_* =
// ms from the due time; waited_for_conn = requests that found no free
// connection.
import { readFileSync } from "node:fs";
import net from "node:net";
import { performance } from "node:perf_hooks";

const [port, bodyFile, sig, runId, rateS, secsS, connsS] = process.argv.slice(2);
const rate = Number(rateS ?? 1000);
const secs = Number(secsS ?? 10);
const nconns = Number(connsS ?? 32);
if (!port || !bodyFile || !sig || !runId || !(rate > 0) || !(secs > 0) || !(nconns > 0)) {
  console.error("usage: node webhooks_load.mjs PORT BODY-FILE SIGNATURE RUN-ID RATE SECONDS CONNS");
  process.exit(2);
}
const body = readFileSync(bodyFile);
const total = Math.round(rate * secs);
const head0 =
  `POST /hooks/github HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
  "Content-Type: application/json\r\nUser-Agent: GitHub-Hookshot/bench\r\n" +
  "X-GitHub-Event: pull_request\r\nX-GitHub-Hook-ID: 4242\r\n" +
  "X-GitHub-Hook-Installation-Target-Type: repository\r\n" +
  `X-Hub-Signature-256: ${sig}\r\nContent-Length: ${body.length}\r\n`;

const lat = new Float64Array(total); // the figure: see above, ms
const due = new Float64Array(total); // from the due time, ms
const lag = new Float64Array(total); // write - due when a connection was free, ms
let nlag = 0;
const status = {};
let errors = 0;
let sent = 0;
let answered = 0;
let issued = 0; // requests whose due time has come
const waiting = []; // indices of due requests with no connection yet
let t0 = 0;
let done = false;
let tLast = 0;
const idle = [];
const conns = [];

// an answer to connection c's request came in
function record(c, code) {
  const now = performance.now();
  const i = c.cur;
  c.cur = -1;
  due[answered] = now - (t0 + (i * 1000) / rate);
  lat[answered] = c.waited ? due[answered] : now - c.sentAt;
  answered++;
  tLast = now;
  status[code] = (status[code] ?? 0) + 1;
}

// connection c is gone (closed by the server, or an error): replace it
function replace(c) {
  if (c.dead) return;
  c.dead = true;
  c.sock.destroy();
  const k = idle.indexOf(c);
  if (k >= 0) idle.splice(k, 1);
  if (c.cur >= 0) {
    errors++;
    c.cur = -1;
  }
  if (!done) conns[conns.indexOf(c)] = connect();
}

function parse(c) {
  for (;;) {
    if (c.need < 0) {
      const end = c.buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const headText = c.buf.subarray(0, end).toString("latin1");
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(headText);
      const cl = /\r\ncontent-length:\s*(\d+)/i.exec(headText);
      if (!m || !cl) {
        console.error(`webhooks_load: cannot read an answer: ${headText.slice(0, 200)}`);
        process.exit(1);
      }
      c.code = m[1];
      c.close = /\r\nconnection:\s*close/i.test(headText);
      c.buf = c.buf.subarray(end + 4);
      c.need = Number(cl[1]);
    }
    if (c.buf.length < c.need) return;
    c.buf = c.buf.subarray(c.need);
    c.need = -1;
    if (c.cur < 0) {
      console.error("webhooks_load: an answer to no request");
      process.exit(1);
    }
    record(c, c.code);
    if (c.close) replace(c);
    else idle.push(c);
    pump(false);
    if (answered + errors === total) finish();
    if (c.dead) return;
  }
}

function connect() {
  const c = { buf: Buffer.alloc(0), need: -1, cur: -1, sentAt: 0, dead: false, ready: false };
  c.sock = net.connect({ port: Number(port), host: "127.0.0.1", noDelay: true });
  c.sock.on("connect", () => {
    c.ready = true;
    if (c.dead) return;
    idle.push(c);
    pump(false);
  });
  c.sock.on("data", (d) => {
    c.buf = c.buf.length ? Buffer.concat([c.buf, d]) : d;
    parse(c);
  });
  const gone = (err) => {
    if (c.dead) return;
    if (err) console.error(`webhooks_load: connection error: ${err.message}`);
    replace(c);
    if (answered + errors === total) finish();
  };
  c.sock.on("error", gone);
  c.sock.on("close", () => gone(null));
  return c;
}

function send(c, i, fromQueue) {
  c.cur = i;
  c.waited = fromQueue;
  c.sentAt = performance.now();
  if (!fromQueue) lag[nlag++] = c.sentAt - (t0 + (i * 1000) / rate);
  c.sock.cork();
  c.sock.write(head0 + `X-GitHub-Delivery: ${runId}-${i}\r\n\r\n`, "latin1");
  c.sock.write(body);
  c.sock.uncork();
  sent++;
}

// send what is due: first the requests waiting for a connection, then new ones
function pump(fromTimer) {
  if (!t0) return;
  while (idle.length && waiting.length) send(idle.pop(), waiting.shift(), true);
  if (!fromTimer) return;
  const upto = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
  for (; issued < upto; issued++) {
    if (idle.length && !waiting.length) send(idle.pop(), issued, false);
    else waiting.push(issued);
  }
}

function tick() {
  pump(true);
  if (issued < total) setTimeout(tick, 1);
  else setTimeout(() => {
    if (answered + errors < total) {
      console.error(`webhooks_load: ${total - answered - errors} answers still out after 30 s`);
      errors += total - answered - errors;
      finish();
    }
  }, 30000).unref();
}

function pct(a, n, p) {
  if (!n) return NaN;
  const s = a.slice(0, n).sort();
  return s[Math.min(n - 1, Math.ceil((p / 100) * n) - 1)];
}

function finish() {
  if (done) return;
  done = true;
  const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : "nan");
  let ok = 0;
  for (const [code, n] of Object.entries(status)) if (code[0] === "2") ok += n;
  const codes = Object.entries(status).map(([c, n]) => `${c}:${n}`).join(",") || "-";
  console.log(
    `LOAD sent=${sent} answered=${answered} ok=${ok} non2xx=${answered - ok} errors=${errors} ` +
      `codes=${codes} rate=${f3(answered / ((tLast - t0) / 1000))} ` +
      `p50=${f3(pct(lat, answered, 50))} p99=${f3(pct(lat, answered, 99))} ` +
      `p999=${f3(pct(lat, answered, 99.9))} max=${f3(pct(lat, answered, 100))} ` +
      `due_p50=${f3(pct(due, answered, 50))} due_p99=${f3(pct(due, answered, 99))} ` +
      `lag_p50=${f3(pct(lag, nlag, 50))} lag_p99=${f3(pct(lag, nlag, 99))} ` +
      `waited_for_conn=${sent - nlag}`,
  );
  for (const c of conns) {
    c.dead = true;
    c.sock.destroy();
  }
}

for (let k = 0; k < nconns; k++) conns.push(connect());
// start once every connection is open, so connecting is not in the figures
const start = setInterval(() => {
  if (conns.every((c) => c.ready)) {
    clearInterval(start);
    t0 = performance.now();
    tick();
  }
}, 5);
