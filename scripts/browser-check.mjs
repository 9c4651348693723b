// Drives the demo page in headless Chromium, as a user would.
//
//   node scripts/browser-check.mjs http://127.0.0.1:3917 [screenshot.png]
//
// Environment:
//   PLAYWRIGHT_DIR  folder whose node_modules holds playwright-core
//                   (default: resolved next to this script)
//   CHROMIUM        the Chromium binary (default: /usr/bin/chromium, chromium-browser)
//
// Checks: the page loads logged out with count 0; two clicks on the counter
// give 2; a wrong password shows an error; logging in as alice through the
// form shows alice and keeps the count (the session ID is renewed: the cookie
// value changes); logging out shows "Not logged in", the count is 0 again
// and the cookie is gone. No console errors (CSP violations included).
// Cross-site requests (issue 10): a page on another site (`localhost` when
// the demo is on 127.0.0.1, and the reverse) submits a form and sends a
// `fetch` POST to the counter; both are refused with 403 and the count does
// not move, while the page's own POSTs (with their CSRF token) count.

import { createRequire } from "node:module";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";

const base = (process.argv[2] || "http://127.0.0.1:3000").replace(/\/$/, "");
const screenshot = process.argv[3] || path.join(tmpdir(), "sessionware-demo.png");

const require = createRequire(
  process.env.PLAYWRIGHT_DIR ? path.join(process.env.PLAYWRIGHT_DIR, "package.json") : import.meta.url,
);
const { chromium } = require("playwright-core");

const executablePath =
  process.env.CHROMIUM ||
  ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => existsSync(p));
if (!executablePath) {
  console.error("browser-check: no Chromium found (set CHROMIUM)");
  process.exit(2);
}

const profile = mkdtempSync(path.join(tmpdir(), "sessionware-chromium-"));
const failures = [];
const consoleErrors = [];

function check(name, ok, got) {
  console.log((ok ? "ok   " : "FAIL ") + name + (ok ? "" : `: got ${JSON.stringify(got)}`));
  if (!ok) failures.push(name);
}

async function text(page, selector) {
  return ((await page.locator(selector).textContent()) || "").trim();
}

// Waits until `selector`'s text equals `expected`; returns the last text seen.
async function waitText(page, selector, expected, timeout = 10_000) {
  try {
    await page.waitForFunction(
      ([s, e]) => (document.querySelector(s)?.textContent || "").trim() === e,
      [selector, expected],
      { timeout },
    );
  } catch (_) {
    // Fall through: the caller's check reports what was there.
  }
  return text(page, selector);
}

async function sessionCookie(context) {
  const cookies = await context.cookies(base);
  return cookies.find((c) => c.name === "__Host-sid" || c.name === "sid");
}

// Serves an attacker's page on another site: a form that posts to the
// demo's counter, and a cross-site `fetch` POST with credentials.
async function attackerSite() {
  const target = new URL(base);
  const otherHost = target.hostname === "localhost" ? "127.0.0.1" : "localhost";
  const action = base + "/api/counter";
  const html = `<!doctype html><title>attacker</title>
<form id="f" method="POST" action="${action}"><input name="x" value="1"></form>
<script>
fetch(${JSON.stringify(action)}, { method: "POST", credentials: "include", mode: "no-cors",
  headers: { "Content-Type": "text/plain" }, body: "x=1" })
  .catch(() => {})
  .finally(() => { document.title = "fetched"; document.getElementById("f").submit(); });
</script>`;
  const server = createServer((_, res) => {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://${otherHost}:${server.address().port}/` };
}

let context;
let browser;
let attacker;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 900, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  browser = context.browser();
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(10_000);
  page.on("console", (msg) => {
    // The 401s of /api/me (logged out) and of the wrong password are expected.
    if (msg.type() === "error" && !/status of 401/.test(msg.text())) consoleErrors.push(msg.text());
  });
  page.on("pageerror", (err) => consoleErrors.push(String(err)));
  const ownPosts = [];
  page.on("request", (r) => {
    if (r.method() === "POST") ownPosts.push(r.headers()["x-csrf-token"] || "");
  });

  const res = await page.goto(base + "/", { waitUntil: "load" });
  check("GET / is 200", res && res.status() === 200, res && res.status());
  check("page starts logged out", (await waitText(page, "#who", "Not logged in")) === "Not logged in", await text(page, "#who"));
  check("counter starts at 0", (await waitText(page, "#count", "0")) === "0", await text(page, "#count"));
  check("reading the page created no session", !(await sessionCookie(context)), await sessionCookie(context));

  await page.click("#increment");
  await waitText(page, "#count", "1");
  await page.click("#increment");
  check("two clicks count to 2", (await waitText(page, "#count", "2")) === "2", await text(page, "#count"));
  const before = await sessionCookie(context);
  check("a session cookie was stored", !!before, before);

  // Cross-site: a form and a fetch from another site must not count.
  attacker = await attackerSite();
  const evil = await context.newPage();
  const refused = [];
  evil.on("response", (r) => {
    if (r.request().method() === "POST" && r.url() === base + "/api/counter") refused.push(r.status());
  });
  const submitted = evil.waitForURL(base + "/api/counter", { timeout: 10_000 }).catch(() => {});
  await evil.goto(attacker.url, { waitUntil: "load" });
  await submitted;
  await evil.waitForLoadState("load").catch(() => {});
  check("the cross-site form and fetch reached the demo", refused.length >= 2, refused);
  check("the demo refused both with 403", refused.length >= 2 && refused.every((s) => s === 403), refused);
  await evil.close();
  await page.reload({ waitUntil: "load" });
  check("the cross-site requests did not change the counter", (await waitText(page, "#count", "2")) === "2", await text(page, "#count"));
  await page.click("#increment");
  check("the page's own POST still counts", (await waitText(page, "#count", "3")) === "3", await text(page, "#count"));
  if (before && before.name === "__Host-sid") {
    check("the cookie is Secure, HttpOnly, SameSite=Lax, Path=/", before.secure && before.httpOnly && before.sameSite === "Lax" && before.path === "/", before);
  }

  await page.fill("#username", "alice");
  await page.fill("#password", "wrong-pass");
  await page.click("#login");
  check("a wrong password shows an error", (await waitText(page, "#login-error", "Wrong username or password.")) === "Wrong username or password.", await text(page, "#login-error"));
  check("a wrong password logs nobody in", (await text(page, "#who")) === "Not logged in", await text(page, "#who"));

  await page.fill("#username", "alice");
  await page.fill("#password", "alice-pass");
  await page.click("#login");
  check("the page shows alice after login", (await waitText(page, "#who", "Logged in as alice")) === "Logged in as alice", await text(page, "#who"));
  check("login kept the count", (await waitText(page, "#count", "3")) === "3", await text(page, "#count"));
  const after = await sessionCookie(context);
  check("login renewed the session ID", !!after && !!before && after.value !== before.value, { before: before?.value?.length, after: after?.value?.length });

  await page.reload({ waitUntil: "load" });
  check("a reload still shows alice", (await waitText(page, "#who", "Logged in as alice")) === "Logged in as alice", await text(page, "#who"));
  check("a reload still shows the count", (await waitText(page, "#count", "3")) === "3", await text(page, "#count"));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`screenshot: ${screenshot}`);

  await page.click("#logout");
  check("the page shows logged out after logout", (await waitText(page, "#who", "Not logged in")) === "Not logged in", await text(page, "#who"));
  check("logout ended the session's data", (await waitText(page, "#count", "0")) === "0", await text(page, "#count"));
  check("logout removed the cookie", !(await sessionCookie(context)), await sessionCookie(context));
  await page.screenshot({ path: screenshot.replace(/\.png$/, "") + "-logged-out.png", fullPage: true });

  check("every POST of the page carried a CSRF token", ownPosts.length >= 4 && ownPosts.every((t) => t.length > 40), ownPosts.map((t) => t.length));
  check("no console errors", consoleErrors.length === 0, consoleErrors);
} catch (err) {
  failures.push(String(err));
  console.error("browser-check error:", err);
} finally {
  if (attacker) attacker.server.close();
  if (context) await context.close().catch(() => {});
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

console.log(`browser check: ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
