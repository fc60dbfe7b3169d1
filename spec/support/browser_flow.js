// spec/support/browser_flow.js — drives the platform's Connect flow in a real
// browser (Debian's chromium, headless, through playwright-core) for
// spec/integration/platform_browser_spec.lua.
//
//   node spec/support/browser_flow.js SCENARIO PLATFORM_URL SHOT_DIR
//
// SCENARIO: approve | deny | two_tabs | account_links (Set up a new Stripe
// account → the fake's onboarding page → Submit → back on the platform).  Prints one JSON line on stdout:
// { ok: true, ...what the scenario saw } or { ok: false, error, where }.
// Screenshots: SHOT_DIR/landing.png and success.png (approve), declined.png (deny).
// The browser gets a fresh profile in a temp folder and only ever talks to
// the loopback URLs it is given.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
// playwright-core comes from $STRIPE_NODE_MODULES (default build/node/node_modules,
// where spec/support/stripe_node.lua installs it).
const modules = process.env.STRIPE_NODE_MODULES || path.resolve('build/node/node_modules');
const { chromium } = require(path.join(modules, 'playwright-core'));

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const STEP_TIMEOUT = 15000;

// The flags of the spec's brief: headless, no sandbox (root in CI), and no
// background traffic of any kind.
// The fresh --user-data-dir is the persistent context's folder (below).
function launchArgs() {
  return ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
}

// Connect → (fake consent) → decision, in one page; answers what it saw.
async function runFlow(page, base, decision, shotDir) {
  await page.goto(base + '/', { waitUntil: 'load' });
  const landing = { title: await page.title(), url: page.url() };
  if (shotDir && decision === 'approve') {
    await page.screenshot({ path: path.join(shotDir, 'landing.png'), fullPage: true });
  }
  await page.getByRole('link', { name: 'Connect with Stripe' }).click();
  await page.waitForSelector('button[value="approve"]');
  const consent = { url: page.url(), text: await page.innerText('body') };
  return { landing, consent, finish: async () => {
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.click(`button[value="${decision}"]`),
    ]);
    const done = { url: page.url(), title: await page.title(), text: await page.innerText('body'),
      links: await page.$$eval('a', (as) => as.map((a) => ({ text: a.innerText, href: a.getAttribute('href') }))) };
    if (shotDir) await page.screenshot({ path: path.join(shotDir, decision === 'approve' ? 'success.png' : 'declined.png'), fullPage: true });
    return done;
  } };
}

async function scenario(name, base, shotDir, context) {
  if (name === 'approve' || name === 'deny') {
    const page = await context.newPage();
    const flow = await runFlow(page, base, name, shotDir);
    const done = await flow.finish();
    return { landing: flow.landing, consent: flow.consent, done,
      cookies: (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite })) };
  }
  if (name === 'two_tabs') {
    // Both tabs reach the consent page before either decides.
    const p1 = await context.newPage();
    const p2 = await context.newPage();
    const f1 = await runFlow(p1, base, 'approve', null);
    const f2 = await runFlow(p2, base, 'approve', null);
    const d2 = await f2.finish();
    const d1 = await f1.finish();
    return { tabs: [d1, d2], cookies: (await context.cookies()).map((c) => c.name) };
  }
  if (name === 'account_links') {
    const page = await context.newPage();
    await page.goto(base + '/', { waitUntil: 'load' });
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.getByRole('button', { name: 'Set up a new Stripe account' }).click(),
    ]);
    const onboarding = { url: page.url(), text: await page.innerText('body') };
    await Promise.all([
      page.waitForNavigation({ waitUntil: 'load' }),
      page.click('button[value="submit"]'),
    ]);
    const done = { url: page.url(), title: await page.title(), text: await page.innerText('body') };
    if (shotDir) await page.screenshot({ path: path.join(shotDir, 'account_links.png'), fullPage: true });
    return { onboarding, done };
  }
  throw new Error('unknown scenario ' + name);
}

async function main() {
  const [name, base, shotDir] = process.argv.slice(2);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'sc-chromium-'));
  let context;
  let where = 'launch';
  try {
    // A persistent context owns the --user-data-dir (playwright refuses it in args).
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true,
      args: launchArgs(), timeout: 30000, viewport: { width: 1000, height: 700 } });
    context.setDefaultTimeout(STEP_TIMEOUT);
    // Console errors (a CSP that blocks the page's own stylesheet shows here).
    const consoleErrors = [];
    context.on('console', (msg) => { if (msg.type() === 'error') consoleErrors.push(msg.text()); });
    where = name;
    const result = await scenario(name, base, shotDir, context);
    process.stdout.write(JSON.stringify(Object.assign({ ok: true, consoleErrors }, result)) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, where, error: String(e && e.stack || e) }) + '\n');
    process.exitCode = 1;
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main();
