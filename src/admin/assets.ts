/** @module admin/assets: the web UI's stylesheet and script, served from memory (no build step, no files to
 *  deploy). The script only adds confirmation prompts and refreshes the live panels (dashboard, tunnel list);
 *  every page works without it. The Content-Security-Policy allows scripts and styles from 'self' only. */

export const STYLESHEET = `
:root { --fg:#1d2430; --muted:#5b6678; --line:#dde2ea; --bg:#f5f7fa; --card:#fff; --accent:#1f6feb; --danger:#c62828; --ok:#2e7d32; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color:var(--fg); background:var(--bg); }
header { background:#17202e; color:#fff; display:flex; flex-wrap:wrap; align-items:center; column-gap:1.5rem; row-gap:.25rem; padding:.45rem 1.5rem; min-height:52px; }
header .brand { font-weight:700; letter-spacing:.02em; }
header nav { display:flex; flex-wrap:wrap; gap:.25rem; flex:1; }
header nav a { color:#c9d3e2; text-decoration:none; padding:.4rem .7rem; border-radius:6px; }
header nav a.active, header nav a[aria-current=page], header nav a:hover { background:#2a3548; color:#fff; }
header .who { color:#c9d3e2; display:flex; gap:.75rem; align-items:center; }
header .who button { background:transparent; color:#c9d3e2; border:1px solid #44506a; }
main { max-width:1200px; margin:1.5rem auto; padding:0 1.5rem; }
h1 { font-size:1.4rem; margin:0 0 1rem; }
h2 { font-size:1.05rem; margin:0 0 .75rem; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem 1.25rem; margin-bottom:1.25rem; }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(180px, 1fr)); gap:1rem; margin-bottom:1.25rem; }
.stat { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:1rem 1.25rem; }
.stat .label { color:var(--muted); font-size:.8rem; text-transform:uppercase; letter-spacing:.05em; }
.stat .value { font-size:1.8rem; font-weight:650; margin-top:.2rem; }
table { width:100%; border-collapse:collapse; }
th, td { text-align:left; padding:.45rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:.78rem; text-transform:uppercase; letter-spacing:.04em; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; }
code, .mono { font-family:ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size:.86em; }
pre { background:#0f1722; color:#e6edf3; padding:.8rem 1rem; border-radius:8px; overflow:auto; }
form.inline { display:inline; }
input[type=text], input[type=password], input[type=search], input[type=number], select { font:inherit; padding:.4rem .55rem; border:1px solid #c3cad6; border-radius:6px; background:#fff; }
input[type=text], input[type=password], input[type=search] { min-width:16rem; }
input[type=number] { width:5rem; }
button { font:inherit; padding:.4rem .8rem; border-radius:6px; border:1px solid var(--accent); background:var(--accent); color:#fff; cursor:pointer; }
button.secondary { background:#fff; color:var(--fg); border-color:#c3cad6; }
button.danger { background:var(--danger); border-color:var(--danger); }
.row { display:flex; gap:.6rem; align-items:center; flex-wrap:wrap; margin-bottom:.6rem; }
.muted { color:var(--muted); }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:999px; font-size:.78rem; background:#e8eef8; color:#234; }
.badge.ok { background:#e3f3e5; color:#1b5e20; } .badge.off { background:#fbe4e4; color:var(--danger); }
.flash { padding:.6rem 1rem; border-radius:8px; margin-bottom:1rem; background:#e3f3e5; color:#1b5e20; border:1px solid #b9e0bd; }
.error { padding:.6rem 1rem; border-radius:8px; margin-bottom:1rem; background:#fbe4e4; color:#8e1c1c; border:1px solid #f0bcbc; }
.login { max-width:360px; margin:10vh auto; }
.login label { display:block; margin:.6rem 0 .2rem; color:var(--muted); }
.login input { width:100%; }
.login button { width:100%; margin-top:1rem; }
.chart { width:100%; height:auto; }
.legend span { margin-right:1rem; } .legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:.35rem; }
.bar { height:10px; background:#e8eef8; border-radius:5px; overflow:hidden; min-width:120px; } .bar > div { height:100%; background:var(--accent); }
.pager { display:flex; gap:1rem; margin-top:.75rem; }
.small { font-size:.82rem; }
.chart-wrap { position:relative; }
.chart-tip { position:absolute; top:.25rem; pointer-events:none; background:#17202e; color:#fff; padding:.3rem .55rem; border-radius:6px; font-size:.8rem; white-space:nowrap; box-shadow:0 2px 8px rgba(0,0,0,.2); }
.legend { display:flex; flex-wrap:wrap; gap:.25rem 1.25rem; } .legend svg { vertical-align:middle; margin-right:.35rem; }
nav.ranges { display:flex; gap:.25rem; } nav.ranges a { padding:.25rem .6rem; border:1px solid #c3cad6; border-radius:6px; text-decoration:none; color:var(--fg); }
nav.ranges a.active { background:var(--accent); border-color:var(--accent); color:#fff; }
th a.sort { color:inherit; text-decoration:none; } th a.sort:hover { text-decoration:underline; } th[aria-sort=ascending], th[aria-sort=descending] { color:var(--fg); }
.token-row { display:flex; gap:.6rem; align-items:stretch; flex-wrap:wrap; } .token-row pre { margin:0; flex:1; }
a { color:#1a5fd0; }
:focus-visible { outline:2px solid var(--accent); outline-offset:2px; }
.skip { position:absolute; left:.5rem; top:-3rem; z-index:10; background:#fff; color:var(--fg); padding:.4rem .8rem; border-radius:6px; }
.skip:focus { top:.5rem; }
.field { display:inline-flex; flex-direction:column; gap:.15rem; color:var(--muted); font-size:.8rem; }
.field > input, .field > select { color:var(--fg); font-size:14px; }
input, select { max-width:100%; }
.card { overflow-x:auto; position:relative; }
.note { color:var(--muted); font-size:.85rem; }
.kill-more { display:inline-block; margin-left:.4rem; vertical-align:middle; }
.kill-more summary { cursor:pointer; color:#1a5fd0; }
.kill-more[open] { display:block; margin:.4rem 0 0; min-width:16rem; white-space:normal; }
.kill-block { margin:.4rem 0 0; }
.row:has(> .field) { align-items:flex-end; }
.sr-only { position:absolute; width:1px; height:1px; padding:0; margin:-1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; border:0; }
/* phones: the header wraps (brand and account on the first row, navigation below), tables scroll inside their
   card, forms stack; the page itself never scrolls sideways */
@media (max-width: 640px) {
  header { padding:.45rem .75rem; column-gap:.75rem; }
  header .brand { flex:1; }
  header nav { order:3; flex-basis:100%; }
  header nav a { padding:.35rem .55rem; }
  header .who { gap:.5rem; font-size:.85rem; }
  main { margin:1rem auto; padding:0 .75rem; }
  .card { padding:.85rem .9rem; }
  .grid { grid-template-columns:repeat(auto-fit, minmax(140px, 1fr)); gap:.6rem; }
  .stat .value { font-size:1.5rem; }
  .row > .field, .row > input, .row > select { flex:1 1 100%; }
  .field > input, input[type=text], input[type=password], input[type=search] { min-width:0; width:100%; }
  .login { margin:6vh auto; }
  pre { font-size:.8rem; }
}
`;

/** The icon browsers ask for on every page (/favicon.ico and /favicon.svg): a tunnel mouth on the header's
 *  colour. SVG, served as image/svg+xml under both names. */
export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="7" fill="#17202e"/><path d="M6 25V15a10 10 0 0 1 20 0v10" fill="none" stroke="#1f6feb" stroke-width="4"/><path d="M12 25v-9a4 4 0 0 1 8 0v9" fill="none" stroke="#c9d3e2" stroke-width="3"/></svg>`;

export const SCRIPT = `
'use strict';
document.addEventListener('submit', function (e) {
  var form = e.target;
  var msg = form && form.getAttribute && form.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) e.preventDefault();
});
// a card or snippet that scrolls sideways (a wide table on a phone) can be focused, so it scrolls by keyboard too
(function () {
  function focusable() {
    document.querySelectorAll('.card, pre').forEach(function (el) {
      if (el.scrollWidth > el.clientWidth + 1) {
        if (!el.hasAttribute('tabindex')) el.setAttribute('tabindex', '0');
      } else if (el.getAttribute('tabindex') === '0') el.removeAttribute('tabindex');
    });
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', focusable);
  else focusable();
  window.addEventListener('resize', focusable);
})();
// live refresh: an element with data-refresh="/url" is replaced by that URL's HTML every 5 s, never while the
// tab is hidden (and at once when it shows again), nor while the operator is using it: the pointer or focus
// inside it, or a <details> in it open (a tunnel row's Block… panel). Checked again when the reply arrives, so
// a panel opened or a field focused during the fetch is not replaced either; the next tick after that retries.
(function () {
  var els = document.querySelectorAll('[data-refresh]');
  if (!els.length) return;
  function inUse(el) {
    return el.matches(':hover') || el.contains(document.activeElement) || el.querySelector('details[open]') !== null;
  }
  var busy = [];
  function tick() {
    if (document.hidden) return;
    els.forEach(function (el, i) {
      if (busy[i] || inUse(el)) return;
      busy[i] = true;
      fetch(el.getAttribute('data-refresh'), { credentials: 'same-origin' })
        .then(function (r) { return r.ok && !r.redirected ? r.text() : null; })
        .then(function (t) { if (t !== null && !document.hidden && !inUse(el)) el.innerHTML = t; })
        .catch(function () {})
        .then(function () { busy[i] = false; });
    });
  }
  setInterval(tick, 5000);
  document.addEventListener('visibilitychange', function () { if (!document.hidden) tick(); });
})();
// chart tooltips: each point has an invisible column (rect.hit) with its time and values in data-tip
(function () {
  function hide(wrap) {
    var tip = wrap.querySelector('.chart-tip');
    var guide = wrap.querySelector('line.guide');
    if (tip) tip.hidden = true;
    if (guide) guide.setAttribute('visibility', 'hidden');
  }
  document.addEventListener('mouseover', function (e) {
    var hit = e.target;
    if (!hit || !hit.classList || !hit.classList.contains('hit')) return;
    var wrap = hit.closest('.chart-wrap');
    if (!wrap) return;
    var tip = wrap.querySelector('.chart-tip');
    if (!tip) {
      tip = document.createElement('div');
      tip.className = 'chart-tip';
      wrap.appendChild(tip);
    }
    tip.textContent = hit.getAttribute('data-tip');
    tip.hidden = false;
    var box = wrap.getBoundingClientRect();
    var at = hit.getBoundingClientRect();
    var x = at.left + at.width / 2 - box.left;
    tip.style.left = Math.max(0, Math.min(box.width - tip.offsetWidth, x + 12)) + 'px';
    var guide = wrap.querySelector('line.guide');
    if (guide) {
      guide.setAttribute('x1', hit.getAttribute('data-x'));
      guide.setAttribute('x2', hit.getAttribute('data-x'));
      guide.setAttribute('visibility', 'visible');
    }
  });
  document.addEventListener('mouseout', function (e) {
    var wrap = e.target && e.target.closest && e.target.closest('.chart-wrap');
    if (wrap && !(e.relatedTarget && wrap.contains(e.relatedTarget))) hide(wrap);
  });
})();
// copy buttons: data-copy names the element whose text goes to the clipboard; without the Clipboard API (plain
// HTTP off loopback) the text is selected and copied the old way, or left selected for Ctrl+C
document.addEventListener('click', function (e) {
  var btn = e.target && e.target.closest && e.target.closest('[data-copy]');
  if (!btn) return;
  var src = document.querySelector(btn.getAttribute('data-copy'));
  var status = document.querySelector(btn.getAttribute('data-copy-status'));
  if (!src) return;
  var text = src.textContent.trim();
  function say(msg) { if (status) status.textContent = msg; }
  function fallback() {
    var range = document.createRange();
    range.selectNodeContents(src);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    var ok = false;
    try { ok = document.execCommand('copy'); } catch (err) { ok = false; }
    say(ok ? 'Copied.' : 'Selected: press Ctrl+C (or Cmd+C) to copy.');
  }
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(function () { say('Copied.'); }, fallback);
  } else fallback();
});
`;
