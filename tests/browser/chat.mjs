// The demo chat page in a real browser: Debian's chromium driven by playwright-core (never a
// browser download). Run by tests/integration/browser.rs against a running `attachment-gateway demo`:
//
//   node tests/browser/chat.mjs <site> <screenshots dir> <sample.png path>
//
// Every step asserts what a person would see and what the gateway answered; a failed step
// exits 1 with the reason. The last line printed is a JSON summary of what was measured.
import { createServer } from 'node:http';
import { mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [site, shots, samplePng] = process.argv.slice(2);
const PREFIX = '/api/support-chat/attachments';
mkdirSync(shots, { recursive: true });
const summary = {};
const step = (name) => console.log(`-- ${name}`);

function check(ok, what, detail) {
  if (!ok) {
    const err = new Error(`${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail)}`);
    err.name = 'Assertion';
    throw err;
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // As root (CI) Chromium's sandbox cannot start; the pages it loads are our own.
  args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
});
// One profile for the whole run, as one shared computer: the cache survives user switches.
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const answers = [];
context.on('response', (r) => {
  const url = new URL(r.url());
  if (url.pathname.startsWith(PREFIX)) {
    answers.push({
      path: url.pathname + url.search,
      method: r.request().method(),
      status: r.status(),
      range: r.request().headers()['range'] || null,
    });
  }
});
const page = await context.newPage();

async function signIn(person) {
  await page.goto(site + '/');
  await Promise.all([
    page.waitForEvent('load'),
    page.click(`button[data-person=${person}]`),
  ]);
  await page.waitForSelector(`button.me[data-person=${person}]`);
}

// Every image tile of the open dialog, once each has loaded or failed.
async function tiles(expected) {
  await page.waitForFunction(
    (n) => {
      const all = [...document.querySelectorAll('#messages .tile.image')];
      return all.length === n && all.every((t) => t.dataset.status);
    },
    expected,
    { timeout: 120_000 },
  );
  return page.$$eval('#messages .tile.image', (all) =>
    all.map((t) => {
      const img = t.querySelector('img');
      return { id: t.dataset.id, status: t.dataset.status, shown: img.complete && img.naturalWidth > 0, width: img.naturalWidth };
    }),
  );
}

try {
  step('the owner opens the dialog of 100 screenshots: every preview is shown');
  await signIn('alice');
  answers.length = 0;
  const started = Date.now();
  await page.goto(site + '/?dialog=dlg_gallery');
  const gallery = await tiles(100);
  // Only this dialog's files: the previous page's video may still be answering.
  const thumbs = answers.filter((a) => a.path.startsWith(PREFIX + '/dlg_gallery/'));
  summary.gallery = {
    shown: gallery.filter((t) => t.shown).length,
    broken: gallery.filter((t) => !t.shown).length,
    ms: Date.now() - started,
    statuses: count(thumbs.map((a) => a.status)),
  };
  await page.screenshot({ path: `${shots}/1-gallery.png`, fullPage: true });
  check(summary.gallery.shown === 100, 'all 100 previews shown', summary.gallery);
  check(thumbs.length === 100 && thumbs.every((a) => a.status === 200 && a.path.endsWith('?variant=thumb')),
    'every preview asked once, as a thumb, and answered 200', summary.gallery.statuses);
  check(gallery.every((t) => t.width > 0 && t.width <= 400), 'previews are thumbs (<= 400 px)', gallery.map((t) => t.width));

  step('a click opens the full picture');
  const [full] = await Promise.all([page.waitForEvent('popup'), page.click('#messages .tile.image >> nth=0')]);
  await full.waitForLoadState('load');
  const original = await full.evaluate(() => {
    const img = document.querySelector('img');
    return img ? { width: img.naturalWidth, height: img.naturalHeight } : null;
  });
  await full.screenshot({ path: `${shots}/2-full-picture.png` });
  check(original && original.width === 960 && original.height === 600, 'the original, full size', original);
  await full.close();

  step('the PDF opens inline in Chromium\'s viewer, with its page count');
  answers.length = 0;
  await page.goto(site + '/?dialog=dlg_demo');
  await page.waitForSelector('a.pdf');
  const [pdf] = await Promise.all([page.waitForEvent('popup'), page.click('a.pdf')]);
  let downloaded = false;
  pdf.on('download', () => { downloaded = true; });
  await pdf.waitForLoadState('load');
  const viewer = await waitFor(() => pdf.frames().find((f) => f.url().startsWith('chrome-extension://')), 15_000);
  check(viewer, 'Chromium\'s PDF viewer took the file', pdf.frames().map((f) => f.url()));
  // The count appears once the viewer has parsed the document.
  let pages = 0;
  for (const until = Date.now() + 15_000; !pages && Date.now() < until; await pdf.waitForTimeout(200)) {
    pages = Number(((await viewer.locator('#pagelength').textContent()) || '').trim()) || 0;
  }
  summary.pdf = { pages, downloaded };
  await pdf.waitForTimeout(500);
  await pdf.screenshot({ path: `${shots}/3-pdf.png` });
  check(summary.pdf.pages === 3, 'the viewer counts 3 pages', summary.pdf);
  check(!downloaded, 'shown inline, not downloaded');
  await pdf.close();

  step('the video (moov at the end) plays and seeks; every range answers 206');
  const played = await page.evaluate(async () => {
    const v = document.querySelector('video');
    v.muted = true;
    const event = (name) => new Promise((resolve) => v.addEventListener(name, resolve, { once: true }));
    await v.play();
    await new Promise((r) => setTimeout(r, 1000));
    const seeked = event('seeked');
    v.currentTime = 9;
    await seeked;
    await new Promise((r) => setTimeout(r, 800));
    return { time: v.currentTime, duration: v.duration, error: v.error && v.error.message, paused: v.paused };
  });
  await page.locator('video').scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${shots}/4-video.png` });
  const video = answers.filter((a) => a.path.includes('att_video'));
  summary.video = { ...played, requests: video.length, statuses: count(video.map((a) => a.status)) };
  check(!played.error && played.duration > 11 && played.time >= 9, 'played and seeked to 9 s', summary.video);
  check(video.length >= 2 && video.every((a) => a.status === 206 && a.range), 'every video request a Range answered 206', video);

  step('an upload through the page shows its preview; once sent, staff sees it too');
  await page.setInputFiles('#file', { name: 'bug report.png', mimeType: 'image/png', buffer: await readFile(samplePng) });
  await page.waitForSelector('#staged [data-staged][data-status]', { timeout: 60_000 });
  const staged = await page.$eval('#staged [data-staged]', (t) => ({ id: t.dataset.staged, status: t.dataset.status, shown: t.querySelector('img').naturalWidth > 0 }));
  await page.screenshot({ path: `${shots}/5-staged.png` });
  check(staged.shown, 'the staged upload\'s preview is shown', staged);
  await page.fill('#text', 'One more screenshot');
  await page.click('#send');
  await page.waitForSelector(`#messages .tile.image[data-id="${staged.id}"][data-status]`);
  await signIn('carol');
  await page.goto(site + '/?dialog=dlg_demo');
  const staffView = await tiles(2);
  await page.screenshot({ path: `${shots}/6-staff.png`, fullPage: true });
  summary.upload = { id: staged.id, staff: staffView };
  check(staffView.every((t) => t.shown), 'staff with the permission sees the sent upload', staffView);

  step('another person on the same browser sees none of the first one\'s files from the cache');
  await signIn('bob');
  // Bob's landing page spent a few of his 200 at once (a refused picture costs two requests:
  // its GET and the page's HEAD asking why), and the gallery alone spends exactly 200. Two
  // seconds give 20 back at the default 600 a minute, so every answer below is the gateway's
  // judgement of Bob, never his rate limit.
  await page.waitForTimeout(2000);
  answers.length = 0;
  await page.goto(site + '/?dialog=dlg_gallery');
  const stranger = await tiles(100);
  await page.screenshot({ path: `${shots}/7-stranger.png`, fullPage: true });
  const asked = answers.filter((a) => a.path.startsWith(PREFIX + '/dlg_gallery/'));
  summary.stranger = { shown: stranger.filter((t) => t.shown).length, statuses: count(asked.map((a) => a.status)) };
  check(summary.stranger.shown === 0, 'the stranger sees no picture', summary.stranger);
  check(asked.length >= 100 && asked.every((a) => a.status === 404), 'each one asked the gateway: 404', summary.stranger);

  step('a cookie-authenticated upload from another origin is refused');
  await signIn('alice');
  const other = await otherOrigin(site + PREFIX + '?filename=evil.txt');
  const [refused] = await Promise.all([
    page.waitForResponse((r) => r.url().includes(PREFIX) && r.request().method() === 'POST'),
    page.goto(other.url),
  ]);
  const body = await refused.text();
  await page.screenshot({ path: `${shots}/8-cross-site.png` });
  other.server.close();
  summary.crossSite = { status: refused.status(), body };
  check(refused.status() === 403 && JSON.parse(body).error === 'cross_site', 'refused as cross_site (the cookie was sent)', summary.crossSite);

  console.log(JSON.stringify(summary));
  await browser.close();
} catch (err) {
  console.error(`FAILED: ${err.name === 'Assertion' ? err.message : err.stack}`);
  await page.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  console.log(JSON.stringify({ failed: err.message, ...summary }));
  await browser.close();
  process.exit(1);
}

function count(values) {
  const out = {};
  for (const v of values) out[v] = (out[v] || 0) + 1;
  return out;
}

async function waitFor(probe, ms) {
  const until = Date.now() + ms;
  for (;;) {
    const found = probe();
    if (found || Date.now() > until) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readFile(path) {
  const { readFile } = await import('node:fs/promises');
  return readFile(path);
}

// A page on another origin of the same site (another port of 127.0.0.1): SameSite=Lax still
// sends the session cookie with its form post, so only the gateway's check can refuse it.
function otherOrigin(action) {
  const html = `<!doctype html><form id=f method=post enctype="text/plain" action="${action}">
    <input name=x value=y></form><script>document.getElementById('f').submit()</script>`;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(html);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () =>
    resolve({ server, url: `http://127.0.0.1:${server.address().port}/` })));
}
