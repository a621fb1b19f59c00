// bench/webhooks_payloads.mjs — the deliveries bench/webhooks.sh posts: real
// GitHub pull_request payloads from @octokit/webhooks-examples (the file
// scripts/test-deps.sh prints), written as GitHub sends them (compact JSON)
// with their X-Hub-Signature-256.
//
//   node bench/webhooks_payloads.mjs INDEX.json OUTDIR SECRET ACTION...
//
// For each ACTION, the first pull_request example with that action is written
// to OUTDIR/ACTION.json and its signature (`sha256=` and the HMAC-SHA256 of
// those exact bytes with SECRET, in hex) to OUTDIR/ACTION.sig. One line per
// payload on stdout: `ACTION bytes=N number=N state=S draft=B labels=a,b sha=S`.
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [index, out, secret, ...actions] = process.argv.slice(2);
if (!index || !out || !secret || !actions.length) {
  console.error("usage: node webhooks_payloads.mjs INDEX.json OUTDIR SECRET ACTION...");
  process.exit(2);
}
const all = JSON.parse(readFileSync(index, "utf8"));
const pr = all.find((e) => e.name === "pull_request");
if (!pr) {
  console.error(`webhooks_payloads: no pull_request examples in ${index}`);
  process.exit(1);
}
for (const action of actions) {
  const ex = pr.examples.find((e) => e.action === action);
  if (!ex) {
    console.error(`webhooks_payloads: no pull_request example with action ${action}`);
    process.exit(1);
  }
  const body = Buffer.from(JSON.stringify(ex));
  const sig = "sha256=" + createHmac("sha256", secret).update(body).digest("hex");
  writeFileSync(join(out, `${action}.json`), body);
  writeFileSync(join(out, `${action}.sig`), sig);
  const p = ex.pull_request;
  console.log(
    `${action} bytes=${body.length} number=${ex.number} state=${p.state} draft=${p.draft} ` +
      `labels=${(p.labels ?? []).map((l) => l.name).join(",") || "-"} sha=${p.head.sha.slice(0, 12)}`,
  );
}
