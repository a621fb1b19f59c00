// bench/seed_faker.mjs — the peer of `prenv seed preview` in bench/seed.sh:
// @faker-js/faker generating the same 10 columns as the bench's seed file
// (bench/seed.sh writes it) as CSV on stdout.
//
//   node bench/seed_faker.mjs ROWS > /dev/null
//
// Columns, as prenv generates them: id (sequence from 1), uid (uuid v4),
// first_name, last_name, email (first.last@example.com from the row's names,
// lowercase ASCII, unique: later uses of a local part get 2, 3, ...), age
// (int 18..90), score (float 0..100, always 2 decimals), active (bool, 80%
// true), tier (free 70 / pro 25 / enterprise 5), created_at (timestamp in
// 2024-2025, whole seconds, UTC). Fields with `,` `"` CR or LF are quoted.
//
// Rows are joined in chunks and written with one write per chunk. faker is
// seeded (faker.seed(1)), so the output is the same every run. On stderr it
// prints `gen_ms MS rows N bytes B`: the time from the first row to the last
// write (without node's start-up and faker's import; bench/seed.sh reports
// both), and what it wrote.
//
// faker is imported from the npm prefix given in FAKER_DIR (bench/seed.sh
// installs it there with `npm install --prefix`).
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const rows = Number(process.argv[2] ?? 1000);
if (!Number.isInteger(rows) || rows < 0) {
  console.error("usage: node seed_faker.mjs ROWS");
  process.exit(2);
}
const dir = process.env.FAKER_DIR;
if (!dir) {
  console.error("seed_faker: FAKER_DIR is not set (the npm prefix faker is installed in)");
  process.exit(2);
}
// the English locale alone: what `import { faker } from "@faker-js/faker"` gives,
// without loading every other locale
const req = createRequire(join(dir, "package.json"));
const mod = await import(pathToFileURL(req.resolve("@faker-js/faker/locale/en")).href);
const faker = mod.faker;
faker.seed(1);

const FROM = new Date("2024-01-01T00:00:00Z");
const TO = new Date("2026-01-01T00:00:00Z");
const TIERS = [
  { weight: 70, value: "free" },
  { weight: 25, value: "pro" },
  { weight: 5, value: "enterprise" },
];
const NEEDS_QUOTE = /[",\r\n]/;
const csv = (s) => (NEEDS_QUOTE.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s);
// like prenv: accents dropped (José → jose, ß → ss), anything not a-z0-9 removed
const ascii = (s) =>
  s
    .normalize("NFKD")
    .replace(/ß/g, "ss")
    .toLowerCase()
    .replace(/[^a-z0-9]/g, "");
const used = new Map(); // local part → times used (unique e-mail, like prenv: a number on repeats)

process.stdout.on("error", (e) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(0); // the reader went away (| head): not an error
});
// stdout to a file or /dev/null writes synchronously; to a pipe, wait when it is full
const put = (s) =>
  process.stdout.write(s) ? null : new Promise((ok) => process.stdout.once("drain", ok));
const CHUNK = 4096;
let chunk = [];
let bytes = 0;
const flush = async () => {
  if (!chunk.length) return;
  const s = chunk.join("\n") + "\n";
  bytes += Buffer.byteLength(s);
  chunk = [];
  await put(s);
};
const HEADER = "id,uid,first_name,last_name,email,age,score,active,tier,created_at\n";
const t0 = performance.now();
bytes += HEADER.length;
await put(HEADER);
for (let i = 1; i <= rows; i++) {
  const first = faker.person.firstName();
  const last = faker.person.lastName();
  let local = [ascii(first), ascii(last)].filter((p) => p).join(".") || "user";
  const n = (used.get(local) ?? 0) + 1;
  used.set(local, n);
  if (n > 1) local += n;
  const created = faker.date.between({ from: FROM, to: TO }).toISOString();
  chunk.push(
    i +
      "," +
      faker.string.uuid() +
      "," +
      csv(first) +
      "," +
      csv(last) +
      "," +
      local +
      "@example.com," +
      faker.number.int({ min: 18, max: 90 }) +
      "," +
      faker.number.float({ min: 0, max: 100, fractionDigits: 2 }).toFixed(2) +
      "," +
      faker.datatype.boolean(0.8) +
      "," +
      faker.helpers.weightedArrayElement(TIERS) +
      "," +
      created.slice(0, 19) +
      "Z",
  );
  if (chunk.length === CHUNK) await flush();
}
await flush();
console.error(`gen_ms ${(performance.now() - t0).toFixed(1)} rows ${rows} bytes ${bytes}`);
