// The dashboard in a real browser: Debian's headless Chromium driven by
// playwright-core (never a downloaded browser). Run by tests/e2e/router_test.c:
//   node dashboard.mjs BASE_URL TOKEN ENV SCREENSHOT CURRENCY
// Checks that the page lists ENV with its expiry and, the project having a
// rate card in CURRENCY, its cost so far, what sleeping saved and a total;
// that without a rate card or without /api/v1/cost the list still shows with
// no cost columns; that "extend 24h" with the token moves the expiry later;
// and writes a screenshot. Exits 0 on success; otherwise prints what went
// wrong and exits 1.
import { createRequire } from "node:module";
const require = createRequire(process.env.PRENV_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [base, token, env, shot, currency] = process.argv.slice(2);
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
  // its cost so far, in the card's currency, and what sleeping saved (nothing yet)
  const money = new RegExp(`^${currency} (\\d+\\.\\d\\d)$`);
  const cost = (await row.locator("td.cost").innerText()).trim();
  const saved = (await row.locator("td.saved").innerText()).trim();
  if (!money.test(cost) || !(Number(cost.match(money)[1]) > 0)) throw new Error(`cost cell says "${cost}", not ${currency} and more than 0`);
  if (saved !== `${currency} 0.00`) throw new Error(`saved cell says "${saved}", not ${currency} 0.00`);
  const total = (await page.locator("table.envs tfoot tr.total").innerText()).trim();
  if (!total.includes("total since each environment was created") || !total.includes(currency + " ")) throw new Error(`total line: ${total}`);
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
  // without a rate card: no cost columns, a hint; the cost API failing: the list anyway
  await page.setViewportSize({ width: 1280, height: 720 });
  for (const [what, reply, note] of [
    ["no rate card", { status: 200, contentType: "application/json", body: JSON.stringify({ currency: "", rate_card: false, rows: [{ env, destroyed: false, cost: 0, saved: 0 }], total: { cost: 0, saved: 0 } }) }, "rate card to prenv.yaml"],
    ["a failing cost API", { status: 500, contentType: "application/json", body: '{"error": "<b>boom</b>"}' }, "cost unavailable: <b>boom</b>"],
  ]) {
    await page.route(base + "/api/v1/cost*", (r) => r.fulfill(reply));
    await page.goto(base + "/", { waitUntil: "load" });
    await page.locator(`tr[data-env="${env}"]`).waitFor({ timeout: 15000 });
    await page.locator(".costnote").waitFor({ timeout: 15000 });
    const cells = await page.locator("td.cost, td.saved, th:text-is('Cost')").count();
    if (cells) fail(`with ${what} the page shows ${cells} cost cells`);
    const shown = await page.locator(".costnote").innerText();
    if (!shown.includes(note)) fail(`with ${what} the note says "${shown}", not "${note}"`);
    if (await page.locator(".costnote b").count()) fail(`with ${what} the note renders the error's markup`);
    await page.unroute(base + "/api/v1/cost*");
  }
  if (external.length) fail("the page made requests elsewhere: " + external.join(", "));
  if (errors.length) fail("script errors: " + errors.join("; "));
  console.log(`dashboard test: ok (expiry moved ${moved}h; screenshot ${shot})`);
} catch (e) {
  fail(e.stack || String(e));
} finally {
  await browser.close();
}
