// bench/webhooks_node.mjs — the peer of `prenv serve` in bench/webhooks.sh: a
// Node HTTP server receiving GitHub webhooks with @octokit/webhooks.
//
//   OCTOKIT_DIR=build/npm-bench PRENV_GITHUB_WEBHOOK_SECRET=s node bench/webhooks_node.mjs
//
// POST /hooks/github: the body is read whole as a string, then
// `webhooks.verifyAndReceive({id, name, signature, payload})` checks the
// X-Hub-Signature-256 HMAC, JSON.parses the payload and runs the handlers
// (one `pull_request` handler that reads the action and the number, as prenv
// reads its fields); the answer is 202 with a small JSON body, like prenv's.
// A bad signature is 401, anything else that throws 400. GET /healthz answers
// 200; GET /stats answers `requests=N ok=N handled=N octokit=VERSION`: the
// deliveries answered, those answered 2xx, and those the pull_request handler
// saw, so the bench can check nothing was dropped. Keep-alive is on (Node's default).
//
// It listens on 127.0.0.1, on the port given as the first argument (default
// 0: any free port) and prints `port N` on stdout once listening. SIGTERM or
// SIGINT close it.
//
// @octokit/webhooks is imported from the npm prefix in OCTOKIT_DIR
// (bench/webhooks.sh installs a pinned version there with `npm install --prefix`).
import http from "node:http";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const dir = process.env.OCTOKIT_DIR;
const secret = process.env.PRENV_GITHUB_WEBHOOK_SECRET;
if (!dir || !secret) {
  console.error("webhooks_node: OCTOKIT_DIR and PRENV_GITHUB_WEBHOOK_SECRET must be set");
  process.exit(2);
}
const req = createRequire(join(dir, "package.json"));
const { Webhooks } = await import(pathToFileURL(req.resolve("@octokit/webhooks")).href);
const version = JSON.parse(
  readFileSync(join(dir, "node_modules/@octokit/webhooks/package.json"), "utf8"),
).version;

const webhooks = new Webhooks({ secret });
const actions = new Map();
webhooks.on("pull_request", ({ payload }) => {
  const k = `${payload.action}#${payload.number}`;
  actions.set(k, (actions.get(k) ?? 0) + 1);
});

const stats = { requests: 0, by_status: {} };
function answer(res, status, body) {
  stats.requests++;
  stats.by_status[status] = (stats.by_status[status] ?? 0) + 1;
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
}

const server = http.createServer((rq, res) => {
  if (rq.method === "GET" && rq.url === "/healthz") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end('{"status": "ok"}\n');
    return;
  }
  if (rq.method === "GET" && rq.url === "/stats") {
    let ok = 0;
    for (const [code, n] of Object.entries(stats.by_status)) if (code[0] === "2") ok += n;
    const handled = [...actions.values()].reduce((a, b) => a + b, 0);
    res.writeHead(200, { "Content-Type": "text/plain" });
    res.end(`requests=${stats.requests} ok=${ok} handled=${handled} octokit=${version}\n`);
    return;
  }
  if (rq.method !== "POST" || rq.url !== "/hooks/github") {
    answer(res, 404, '{"error": "no such path"}\n');
    return;
  }
  const chunks = [];
  rq.on("data", (c) => chunks.push(c));
  rq.on("end", async () => {
    const payload = Buffer.concat(chunks).toString("utf8");
    try {
      await webhooks.verifyAndReceive({
        id: rq.headers["x-github-delivery"],
        name: rq.headers["x-github-event"],
        signature: rq.headers["x-hub-signature-256"],
        payload,
      });
      answer(res, 202, '{"result": "accepted"}\n');
    } catch (err) {
      const bad = /signature/.test(String(err?.message));
      answer(res, bad ? 401 : 400, JSON.stringify({ error: String(err?.message) }) + "\n");
    }
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`port ${server.address().port}`);
});
for (const sig of ["SIGTERM", "SIGINT"])
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
  });
