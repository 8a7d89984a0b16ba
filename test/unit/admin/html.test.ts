/** admin/html and admin/http: escaping by default, cookie parsing and serialisation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { html, escapeHtml } from '../../../src/admin/html.js';
import { parseCookies, safeEqual, serializeCookie } from '../../../src/admin/http.js';

// under another name, so prettier's embedded-HTML formatting leaves these exact fragments alone
const h = html;

test('html escapes every interpolated value unless it is already html', () => {
  const evil = `<script>alert("x")</script>&'`;
  assert.equal(h`<p>${evil}</p>`.text, '<p>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;</p>');
  assert.equal(h`<a title="${'" onmouseover="x'}">`.text, '<a title="&quot; onmouseover=&quot;x">');
  assert.equal(h`<ul>${['<a>', h`<li>${'<b>'}</li>`]}</ul>`.text, '<ul>&lt;a&gt;<li>&lt;b&gt;</li></ul>');
  assert.equal(h`${null}${undefined}${false}${0}`.text, '0');
  assert.equal(escapeHtml('plain'), 'plain');
});

test('cookies: first occurrence wins, quotes and percent-encoding undone, junk skipped', () => {
  const c = parseCookies('a=1; b="two"; a=3; junk; c=%E2%9C%93; d=%zz');
  assert.equal(c.get('a'), '1');
  assert.equal(c.get('b'), 'two');
  assert.equal(c.get('c'), '✓');
  assert.equal(c.has('d'), false);
  assert.equal(c.has('junk'), false);
  assert.equal(parseCookies(undefined).size, 0);
});

test('Set-Cookie carries HttpOnly, SameSite and Secure as asked', () => {
  assert.equal(
    serializeCookie('s', 'v;1', { maxAgeS: 60, secure: true, sameSite: 'Strict', httpOnly: true }),
    's=v%3B1; Path=/; SameSite=Strict; Max-Age=60; HttpOnly; Secure',
  );
  assert.equal(
    serializeCookie('s', '', { secure: false, sameSite: 'Lax', httpOnly: false }),
    's=; Path=/; SameSite=Lax',
  );
});

test('safeEqual compares whole strings', () => {
  assert.equal(safeEqual('abc', 'abc'), true);
  assert.equal(safeEqual('abc', 'abd'), false);
  assert.equal(safeEqual('abc', 'abcd'), false);
});
