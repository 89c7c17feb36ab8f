// The demo chat page: plain JS, no framework, no build step. Everything under
// /api/support-chat/attachments is answered by the gateway; /demo/* by the stand-in app.
'use strict';

const PREFIX = '/api/support-chat/attachments';
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let state = null;
let staged = [];

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

// An image tile whose picture comes from the gateway. A `503 preview_busy` is retried (a
// browser's <img> does not); any other failure shows "not available".
function picture(src, alt, href) {
  const img = el('img', { src, alt, decoding: 'async' });
  const tile = el('a', { class: 'tile', href, target: '_blank', title: alt }, img);
  let retries = 0;
  img.addEventListener('error', async () => {
    const resp = await fetch(src, { method: 'HEAD', credentials: 'same-origin' }).catch(() => null);
    if (resp && resp.status === 503 && retries < 5) {
      retries += 1;
      setTimeout(() => { img.src = src + '&retry=' + retries; }, 1000 * retries);
      return;
    }
    tile.classList.add('missing');
    tile.dataset.status = resp ? String(resp.status) : 'error';
  });
  img.addEventListener('load', () => { tile.dataset.status = '200'; });
  return tile;
}

function attachmentView(a) {
  const url = a.url;
  const name = a.originalName;
  const mime = a.mimeType || '';
  if (mime.startsWith('image/')) {
    const tile = picture(url + '?variant=thumb', name, url);
    tile.classList.add('image');
    tile.dataset.id = a.id;
    return tile;
  }
  if (mime.startsWith('video/')) {
    return el('video', { src: url, controls: '', preload: 'metadata', 'data-id': a.id, title: name });
  }
  if (mime === 'application/pdf') {
    return el('a', { class: 'file pdf', href: url, target: '_blank', 'data-id': a.id }, 'PDF: ' + name);
  }
  return el('a', { class: 'file', href: url + '?download=1', 'data-id': a.id },
    'Download: ' + name + ' (' + Math.round(a.sizeBytes / 1048576) + ' MiB)');
}

function render() {
  const me = state.me;
  $('people').replaceChildren(...state.people.map((p) =>
    el('button', { class: p.id === me ? 'me' : '', 'data-person': p.id, onclick: () => signIn(p.id) }, p.name)));
  const person = state.people.find((p) => p.id === me);
  $('who').textContent = person
    ? 'Signed in as ' + person.name + ': should see ' + person.sees + '.'
    : 'Choose who you are above.';
  const open = params.get('dialog') || state.dialogs[0].id;
  $('dialogs').replaceChildren(...state.dialogs.map((d) =>
    el('a', { href: '?dialog=' + d.id, class: d.id === open ? 'open' : '' }, d.title)));
  const dialog = state.dialogs.find((d) => d.id === open) || state.dialogs[0];
  $('messages').replaceChildren(...dialog.messages.map((m) =>
    el('article', { class: 'message', 'data-message': m.id },
      el('div', { class: 'meta' }, m.author + ' · ' + new Date(m.sentAt).toLocaleString()),
      el('div', {}, m.text),
      el('div', { class: 'files' }, ...m.attachments.map(attachmentView)))));
  $('messages').dataset.dialog = dialog.id;
}

async function load() {
  state = await (await fetch('/demo/state', { credentials: 'same-origin' })).json();
  render();
}

// A new person, a new page: the app's sign-in answer clears this origin's caches
// (Clear-Site-Data), and the full navigation drops the page's in-memory images.
async function signIn(id) {
  await fetch('/demo/session', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ as: id }),
  });
  location.reload();
}

async function stage(file) {
  $('status').textContent = 'uploading…';
  const resp = await fetch(PREFIX + '?filename=' + encodeURIComponent(file.name), {
    method: 'POST', credentials: 'same-origin',
    headers: { 'content-type': file.type || 'application/octet-stream' }, body: file,
  });
  const body = await resp.json().catch(() => ({}));
  if (resp.status !== 201) {
    $('status').textContent = 'upload refused: ' + resp.status + ' ' + (body.error || '');
    return;
  }
  $('status').textContent = '';
  staged.push(body);
  const view = body.mimeType.startsWith('image/')
    ? picture(body.url + '?variant=thumb', body.originalName, body.url)
    : el('span', { class: 'file' }, body.originalName);
  view.dataset.staged = body.id;
  $('staged').append(view);
}

async function send(event) {
  event.preventDefault();
  const dialogId = $('messages').dataset.dialog;
  const resp = await fetch('/demo/messages', {
    method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ dialogId, text: $('text').value, attachmentIds: staged.map((s) => s.id) }),
  });
  if (resp.status !== 201) {
    const body = await resp.json().catch(() => ({}));
    $('status').textContent = 'not sent: ' + resp.status + ' ' + (body.error || '');
    return;
  }
  staged = [];
  $('staged').replaceChildren();
  $('text').value = '';
  await load();
}

$('file').addEventListener('change', (e) => { for (const f of e.target.files) stage(f); e.target.value = ''; });
$('composer').addEventListener('submit', send);
load();
