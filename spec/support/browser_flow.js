// spec/support/browser_flow.js — walks the platform's pages in a real browser
// (Debian's chromium, headless, through playwright-core) for
// spec/integration/platform_browser_spec.lua.
//
//   PLATFORM_URL=… FAKE_URL=… ADMIN_TOKEN=… node spec/support/browser_flow.js SHOT_DIR
//
// One browser process runs every walk, each in a fresh context (its own
// cookies), in this order:
//   selfcheck      a page made to fail every check (below): proves they can fail
//   approve        home → Connect → the fake's consent page (prefilled fields) → Approve → success
//   admin          sign-in → the account listed → Disconnect → confirm → listed as
//                  disconnected → the Disconnected filter → sign out
//   deny           home → Connect → consent → Deny → the declined page
//   tampered       home → Connect → the authorize URL with its state changed → Approve → 403
//   two_tabs       two tabs reach the consent page, both complete
//   account_links  home → Set up a new Stripe account → the fake's onboarding page → Submit → success
//
// Every page a walk stops at is a step: screenshots SHOT_DIR/WALK-STEP.png
// (1000 px wide) and WALK-STEP.375.png (375 px wide), and checks whose
// findings the spec judges:
//   overflow   document.documentElement scrollWidth against clientWidth at 375 px
//   viewport   the page's <meta name="viewport"> (without width=device-width a
//              phone lays the page out 980 px wide, whatever the 375 px check says)
//   contrast   every element with visible text: the WCAG 2 contrast of its
//              computed color against its effective background (the first
//              opaque background-color up its ancestors, the translucent ones
//              on the way composited over it; the canvas is white), below
//              4.5:1, or 3:1 for large text (>= 24px, or >= 18.66px bold)
// and per walk: console errors (and uncaught page errors), and CSP
// violations (securitypolicyviolation events, reported from an init script
// through a binding, so a violation on any page of the walk is kept).
//
// Prints one JSON line on stdout: { ok, error?, walks: { NAME: { ok, error?,
// steps: { STEP: {…} }, consoleErrors, cspViolations, tokenCalls, … } } }.
// The browser gets a fresh temp profile and only talks to the loopback URLs
// it is given (the self-check page is answered by a route, not the network).
'use strict';
const crypto = require('crypto');
const path = require('path');
// playwright-core comes from $STRIPE_NODE_MODULES (default build/node/node_modules,
// where spec/support/stripe_node.lua installs it).
const modules = process.env.STRIPE_NODE_MODULES || path.resolve('build/node/node_modules');
const { chromium } = require(path.join(modules, 'playwright-core'));

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BASE = process.env.PLATFORM_URL;
const FAKE = process.env.FAKE_URL;
const ADMIN_TOKEN = process.env.ADMIN_TOKEN;
const STEP_TIMEOUT = 15000;
const WIDE = { width: 1000, height: 700 };
const PHONE_WIDTH = 375;

// Headless, no sandbox (root in CI), and no background traffic of any kind.
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// ------------------------------------------------------------- in the page
// audit() runs inside the page (page.evaluate): the contrast of every element
// with visible text, and the contrast function's answers on known pairs (its
// unit check, in the same page context).
function audit() {
  function parse(c) {
    const m = /^rgba?\(([^)]*)\)$/.exec(c.trim());
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    if (p.length < 3 || p.some(Number.isNaN)) return null;
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  }
  function over(top, bottom) { // top composited over an opaque bottom
    const mix = (t, b) => t * top.a + b * (1 - top.a);
    return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a: 1 };
  }
  function luminance(c) {
    const lin = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * lin(c.r) + 0.7152 * lin(c.g) + 0.0722 * lin(c.b);
  }
  function ratio(fg, bg) {
    const a = luminance(fg), b = luminance(bg);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  }
  const WHITE = { r: 255, g: 255, b: 255, a: 1 };
  // effective(el) -> the opaque colour behind el's text, or null (unparsed).
  function effective(el) {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (!c) return null;
      if (c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = WHITE;
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  }
  function visibleText(el) {
    let text = '';
    for (const n of el.childNodes) {
      if (n.nodeType !== Node.TEXT_NODE || !n.textContent.trim()) continue;
      const r = document.createRange();
      r.selectNodeContents(n);
      const box = r.getBoundingClientRect();
      if (box.width > 0 && box.height > 0) text += n.textContent;
    }
    return text.trim();
  }
  const hex = (c) => '#' + [c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
  const offenders = [];
  let checked = 0;
  for (const el of document.body.querySelectorAll('*')) {
    const s = getComputedStyle(el);
    if (s.visibility !== 'visible' || s.display === 'none' || el.getClientRects().length === 0) continue;
    const text = visibleText(el);
    if (!text) continue;
    checked++;
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const large = size >= 24 || (size >= 18.66 && bold);
    const required = large ? 3 : 4.5;
    const where = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '');
    const fg = parse(s.color), bg = effective(el);
    if (!fg || !bg) {
      offenders.push({ where, text: text.slice(0, 60), color: s.color, problem: 'a colour the audit cannot read' });
      continue;
    }
    const fgOnBg = fg.a < 1 ? over(fg, bg) : fg;
    const r = ratio(fgOnBg, bg);
    if (r < required) {
      offenders.push({ where, text: text.slice(0, 60), color: hex(fgOnBg), background: hex(bg),
        ratio: Math.round(r * 100) / 100, required, fontSize: size, bold });
    }
  }
  const p = (c) => parse(c);
  const unit = {
    black_on_white: ratio(p('rgb(0, 0, 0)'), WHITE),
    grey777_on_white: ratio(p('rgb(119, 119, 119)'), WHITE), // 4.48: just fails AA
    grey767676_on_white: ratio(p('rgb(118, 118, 118)'), WHITE), // 4.54: just passes
    half_black_over_white: hex(over(p('rgba(0, 0, 0, 0.5)'), WHITE)),
  };
  return { checked, offenders, unit };
}

// --------------------------------------------------------------- per walk
// A fresh context whose console errors, page errors and CSP violations are
// kept for the walk.
async function walkContext(browser, walk) {
  const context = await browser.newContext({ viewport: WIDE });
  context.setDefaultTimeout(STEP_TIMEOUT);
  walk.consoleErrors = [];
  walk.cspViolations = [];
  context.on('console', (msg) => {
    if (msg.type() === 'error') {
      walk.consoleErrors.push({ text: msg.text(), url: msg.page() && msg.page().url(), source: msg.location().url });
    }
  });
  context.on('page', (page) => page.on('pageerror', (e) => walk.consoleErrors.push({ text: String(e), url: page.url() })));
  await context.exposeBinding('__scViolation', ({ page }, v) => { walk.cspViolations.push(Object.assign({ url: page.url() }, v)); });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__scViolation({ directive: e.effectiveDirective || e.violatedDirective, blocked: e.blockedURI,
        sample: e.sample, source: e.sourceFile, line: e.lineNumber });
    });
  });
  return context;
}

// step(walk, page, name, response) -> what the page shows, checked; its
// screenshots are WALK-NAME.png and WALK-NAME.375.png.
async function step(walk, page, name, response, shotDir) {
  const file = `${walk.name}-${name}`;
  const s = { url: page.url(), status: response ? response.status() : null, title: await page.title(),
    text: await page.innerText('body'),
    links: await page.$$eval('a', (as) => as.map((a) => ({ text: a.innerText, href: a.getAttribute('href') }))) };
  s.contrast = await page.evaluate(audit);
  s.viewport = await page.evaluate(() => { const m = document.querySelector('meta[name="viewport"]'); return m && m.content; });
  await page.screenshot({ path: path.join(shotDir, file + '.png'), fullPage: true });
  const size = page.viewportSize();
  await page.setViewportSize({ width: PHONE_WIDTH, height: size.height });
  s.overflow = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth,
    clientWidth: document.documentElement.clientWidth }));
  s.overflow.horizontal = s.overflow.scrollWidth > s.overflow.clientWidth;
  await page.screenshot({ path: path.join(shotDir, file + '.375.png'), fullPage: true });
  await page.setViewportSize(size);
  walk.steps[name] = s;
  return s;
}

// nav(page, action) -> the response of the navigation `action` causes.
async function nav(page, action) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), action()]);
  return response;
}

async function tokenCalls() {
  const res = await fetch(FAKE + '/__fake/requests');
  const body = await res.json();
  return body.data.filter((r) => r.path === '/oauth/token' && r.grant_type === 'authorization_code').length;
}

// home → Connect → the consent page: its steps "home" and "consent".
async function toConsent(walk, page, shotDir) {
  await step(walk, page, 'home', await page.goto(BASE + '/', { waitUntil: 'load' }), shotDir);
  const response = await nav(page, () => page.getByRole('link', { name: 'Connect with Stripe' }).click());
  await page.waitForSelector('button[value="approve"]');
  return step(walk, page, 'consent', response, shotDir);
}

async function decide(walk, page, decision, name, shotDir) {
  const response = await nav(page, () => page.click(`button[value="${decision}"]`));
  return step(walk, page, name, response, shotDir);
}

// The rows of the "Prefilled fields" table of the consent page: [[field, value]].
function prefilled(page) {
  return page.$$eval('h2', (hs) => {
    const h = hs.find((e) => e.textContent.trim() === 'Prefilled fields');
    const t = h && h.nextElementSibling;
    if (!t || t.tagName !== 'TABLE') return [];
    return [...t.querySelectorAll('tr')].map((tr) => [...tr.cells].map((c) => c.textContent));
  });
}

function adminRows(page) {
  return page.$$eval('tbody tr', (trs) => trs.map((tr) => ({ account: tr.cells[0].textContent,
    status: tr.cells[1] ? tr.cells[1].textContent : null })));
}

const cookiesOf = async (context) => (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly,
  sameSite: c.sameSite }));

// A page made to fail every check, served by a route: a CSP that blocks its
// style attribute, text below AA, a box wider than a phone, no viewport meta.  The elements
// with ids pass*/fail* say what the contrast audit must find.
const SELF_CSS = 'body{margin:0;background:#fff;font:16px sans-serif}#fail-grey{color:#777}' +
  '#pass-large{color:#949494;font-size:24px}#fail-small{color:#949494}' +
  '.dark{background:#000}#pass-composited{background:rgba(255,255,255,.1);color:#fff}' +
  '#pass-walkup{color:#eee}#fail-half{color:rgba(0,0,0,.3)}#pass-ok{color:#767676}.wide{width:600px}';
const SELF_HTML = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>self-check</title>' +
  `<style>${SELF_CSS}</style></head><body><p id="pass-ok">grey that passes</p><p id="fail-grey">grey that fails</p>` +
  '<p id="pass-large">large light grey</p><p id="fail-small">small light grey</p><p id="fail-half">translucent black</p>' +
  '<div class="dark"><p id="pass-composited">white on a faint layer over black</p><div><span id="pass-walkup">light on an ' +
  'inherited dark</span></div></div><div class="wide" style="color:red">wider than a phone</div></body></html>';
const SELF_CSP = `default-src 'none'; style-src 'sha256-${crypto.createHash('sha256').update(SELF_CSS).digest('base64')}'`;

const WALKS = {
  async selfcheck(walk, context, shotDir) {
    const url = 'http://127.0.0.1:9/selfcheck';
    await context.route(url, (route) => route.fulfill({ status: 200, body: SELF_HTML,
      headers: { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': SELF_CSP } }));
    const page = await context.newPage();
    await step(walk, page, 'page', await page.goto(url, { waitUntil: 'load' }), shotDir);
    // the violation event is queued: give it a turn before reading
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 50)));
  },

  async approve(walk, context, shotDir) {
    const page = await context.newPage();
    await toConsent(walk, page, shotDir);
    walk.prefilled = await prefilled(page);
    await decide(walk, page, 'approve', 'success', shotDir);
    walk.cookies = await cookiesOf(context);
  },

  async admin(walk, context, shotDir, results) {
    const page = await context.newPage();
    await step(walk, page, 'signin', await page.goto(BASE + '/admin', { waitUntil: 'load' }), shotDir);
    await page.fill('input[name="token"]', ADMIN_TOKEN);
    let s = await step(walk, page, 'list', await nav(page, () => page.getByRole('button', { name: 'Sign in' }).click()), shotDir);
    walk.listed = await adminRows(page);
    const m = /\/connected\?account=(acct_\w+)$/.exec((results.approve.steps.success || {}).url || '');
    const id = walk.account = m ? m[1] : (walk.listed.find((r) => r.status === 'connected') || {}).account;
    if (!id) throw new Error('no connected account to disconnect on ' + s.url);
    const row = page.locator('tbody tr', { hasText: id });
    await step(walk, page, 'confirm', await nav(page, () => row.getByRole('link', { name: 'Disconnect' }).click()), shotDir);
    s = await step(walk, page, 'disconnected', await nav(page, () => page.getByRole('button', { name: 'Disconnect' }).click()), shotDir);
    walk.afterDisconnect = await adminRows(page);
    await step(walk, page, 'filtered', await nav(page, () => page.getByRole('link', { name: 'Disconnected', exact: true }).click()), shotDir);
    walk.filtered = await adminRows(page);
    await step(walk, page, 'signed-out', await nav(page, () => page.getByRole('button', { name: 'Sign out' }).click()), shotDir);
    // signed out for real: the list asks for the token again
    await step(walk, page, 'list-again', await page.goto(BASE + '/admin', { waitUntil: 'load' }), shotDir);
    walk.signInForm = await page.locator('input[name="token"]').count();
    walk.cookies = await cookiesOf(context);
  },

  async deny(walk, context, shotDir) {
    const page = await context.newPage();
    await toConsent(walk, page, shotDir);
    await decide(walk, page, 'deny', 'declined', shotDir);
  },

  async tampered(walk, context, shotDir) {
    const page = await context.newPage();
    await toConsent(walk, page, shotDir);
    // One character in the middle of the state changed (the middle: every
    // bit of it counts, unlike the last base64url character's).
    const u = new URL(page.url());
    const state = u.searchParams.get('state');
    const i = Math.floor(state.length / 2);
    const tampered = state.slice(0, i) + (state[i] === 'A' ? 'B' : 'A') + state.slice(i + 1);
    u.searchParams.set('state', tampered);
    await step(walk, page, 'consent-tampered', await page.goto(u.toString(), { waitUntil: 'load' }), shotDir);
    const s = await decide(walk, page, 'approve', 'rejected', shotDir);
    walk.stateShown = s.text.includes(tampered) || s.text.includes(state);
  },

  async two_tabs(walk, context, shotDir) {
    // Both tabs reach the consent page before either decides.
    const tabs = [{ name: 'tab1', page: await context.newPage() }, { name: 'tab2', page: await context.newPage() }];
    for (const t of tabs) {
      await t.page.goto(BASE + '/', { waitUntil: 'load' });
      await nav(t.page, () => t.page.getByRole('link', { name: 'Connect with Stripe' }).click());
      await t.page.waitForSelector('button[value="approve"]');
    }
    for (const t of tabs.slice().reverse()) await decide(walk, t.page, 'approve', t.name + '-success', shotDir);
    walk.cookies = (await context.cookies()).map((c) => c.name);
  },

  async account_links(walk, context, shotDir) {
    const page = await context.newPage();
    await step(walk, page, 'home', await page.goto(BASE + '/', { waitUntil: 'load' }), shotDir);
    await step(walk, page, 'onboarding',
      await nav(page, () => page.getByRole('button', { name: 'Set up a new Stripe account' }).click()), shotDir);
    await decide(walk, page, 'submit', 'success', shotDir);
  },
};

async function main() {
  const [shotDir] = process.argv.slice(2);
  const results = {};
  let browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30000 });
    for (const [name, run] of Object.entries(WALKS)) {
      const walk = results[name] = { name, ok: false, steps: {} };
      let context;
      try {
        context = await walkContext(browser, walk);
        const before = name === 'selfcheck' ? 0 : await tokenCalls();
        await run(walk, context, shotDir, results);
        walk.tokenCalls = name === 'selfcheck' ? 0 : (await tokenCalls()) - before;
        walk.ok = true;
      } catch (e) {
        walk.error = String(e && e.stack || e);
      } finally {
        if (context) await context.close().catch(() => {});
        delete walk.name;
      }
    }
    process.stdout.write(JSON.stringify({ ok: true, walks: results }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack || e), walks: results }) + '\n');
    process.exitCode = 1;
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
}

main();
