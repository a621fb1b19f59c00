// The dashboard in a real browser: Debian's headless Chromium driven by
// playwright-core (never a downloaded browser). Run by tests/e2e/router_test.c:
//   node dashboard.mjs BASE_URL TOKEN ENV SCREENSHOT
// Checks that the page lists ENV with its expiry, that "extend 24h" with the
// token moves the expiry later, and writes a screenshot. Exits 0 on success;
// otherwise prints what went wrong and exits 1.
import { createRequire } from "node:module";
const require = createRequire(process.env.PRENV_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [base, token, env, shot] = process.argv.slice(2);
const fail = (msg) => { console.error("dashboard test: " + msg); process.exitCode = 1; };

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const external = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/", { waitUntil: "load" });
  const row = page.locator(`tr[data-env="${env}"]`);
  await row.waitFor({ timeout: 15000 });
  const expires = row.locator("td.expires");
  const before = Number(await expires.getAttribute("data-ms"));
  if (!before) throw new Error(`${env} shows no expiry: ${await row.innerText()}`);
  const text = await row.innerText();
  for (const want of [env, "preview"]) if (!text.includes(want)) throw new Error(`row lacks ${want}: ${text}`);
  await page.fill("#token", token);
  await page.dispatchEvent("#token", "change");
  await row.locator('button[data-act="extend"]').click();
  await page.waitForFunction(
    ([name, was]) => {
      const td = document.querySelector(`tr[data-env="${name}"] td.expires`);
      return td && Number(td.dataset.ms) > was;
    },
    [env, before],
    { timeout: 30000 },
  );
  const after = Number(await page.locator(`tr[data-env="${env}"] td.expires`).getAttribute("data-ms"));
  const moved = Math.round((after - before) / 3600000);
  if (moved !== 24) fail(`extend moved the expiry by ${moved}h, not 24h`);
  await page.screenshot({ path: shot, fullPage: true });
  // the detail view: resources and history
  await page.click(`tr[data-env="${env}"] a`);
  await page.locator("h2", { hasText: "Resources" }).waitFor({ timeout: 10000 });
  // a phone: the table turns into cards and stays readable
  await page.setViewportSize({ width: 390, height: 800 });
  await page.goto(base + "/", { waitUntil: "load" });
  await page.locator(`tr[data-env="${env}"]`).waitFor({ timeout: 15000 });
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  if (width > 400) fail(`on a phone the page is ${width}px wide (scrolls sideways)`);
  await page.screenshot({ path: shot.replace(/\.png$/, "-phone.png"), fullPage: true });
  if (external.length) fail("the page made requests elsewhere: " + external.join(", "));
  if (errors.length) fail("script errors: " + errors.join("; "));
  console.log(`dashboard test: ok (expiry moved ${moved}h; screenshot ${shot})`);
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
