import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildMeizuMessage } from '../../providers/meizu.js';
import type { Outcome, PushContent } from '../../providers/types.js';
import { notificationTexts, truncateChars } from '../../providers/shared/text.js';
import { validateMeizuMessage } from '../mocks/vendors/meizu.js';

const NOW = Date.UTC(2025, 0, 10, 4, 0, 0);

function content(over: Partial<PushContent> = {}): PushContent {
  return {
    messageId: 'm-7',
    notification: { title: 'Order shipped', body: 'Your parcel is on its way' },
    options: { ttl: 3600, priority: 'high' },
    expiresAt: NOW + 3600_000,
    ...over,
  };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const code = (o: Outcome | undefined) => (o && o.kind !== 'sent' ? o.reason.code : undefined);
const bar = (b: ReturnType<typeof buildMeizuMessage>) => {
  if (!b.ok) throw new Error(`expected a body, got ${JSON.stringify(b.outcome)}`);
  return b.value.noticeBarInfo as Record<string, unknown>;
};

describe('vendor-common: truncateChars counts UTF-16 code units', () => {
  it('an emoji counts 2, as in Java / JS String.length', () => {
    assert.equal(truncateChars('😀😀😀', 4), '😀😀');
    assert.equal(truncateChars('😀😀😀', 6), '😀😀😀');
    assert.equal(truncateChars('a😀b', 3), 'a😀');
  });
  it('never splits a surrogate pair: the cut falls before it', () => {
    assert.equal(truncateChars('😀😀😀', 3), '😀');
    assert.equal(truncateChars('😀😀😀', 1), '');
    assert.equal(truncateChars('ab😀', 3), 'ab');
    for (let max = 0; max <= 12; max++) {
      const out = truncateChars('x😀y😀😀z😀', max);
      assert.ok(out.length <= max, `max ${max}: ${out.length} units`);
      assert.doesNotMatch(out, LONE_SURROGATE, `max ${max}: a lone surrogate`);
    }
  });
  it('BMP text (CJK included) is cut per character; short text is returned as is', () => {
    assert.equal(truncateChars('订单已发货请查收', 4), '订单已发');
    assert.equal(truncateChars('hello', 5), 'hello');
    assert.equal(truncateChars('hello', 9), 'hello');
    assert.equal(truncateChars('', 3), '');
  });
});

describe('vendor-common: notificationTexts', () => {
  it('a blank title or body is absent and each falls back on the other', () => {
    assert.deepEqual(notificationTexts({ title: 'T', body: 'B' }), { title: 'T', body: 'B' });
    assert.deepEqual(notificationTexts({ title: '', body: 'hello' }), { title: 'hello', body: 'hello' });
    assert.deepEqual(notificationTexts({ title: ' \t\n', body: 'hello' }), { title: 'hello', body: 'hello' });
    assert.deepEqual(notificationTexts({ title: 'Hi', body: '\u3000 ' }), { title: 'Hi', body: 'Hi' });
    assert.deepEqual(notificationTexts({ title: '  Hi  ', body: ' there ' }), { title: 'Hi', body: 'there' });
  });
  it('nothing but blanks, or no notification: undefined', () => {
    assert.equal(notificationTexts({ title: ' ', body: '' }), undefined);
    assert.equal(notificationTexts({ sound: 'default' }), undefined);
    assert.equal(notificationTexts(undefined), undefined);
  });
});

describe('Meizu: title and content', () => {
  it('an empty title falls back on the body (not DataOnlyUnsupported)', () => {
    const b = bar(buildMeizuMessage(content({ notification: { title: '', body: 'hello' } }), {}, {}, NOW));
    assert.equal(b.title, 'hello');
    assert.equal(b.content, 'hello');
  });
  it('a whitespace-only title or body falls back on the other', () => {
    const t = bar(buildMeizuMessage(content({ notification: { title: '   ', body: 'hello' } }), {}, {}, NOW));
    assert.deepEqual([t.title, t.content], ['hello', 'hello']);
    const b = bar(buildMeizuMessage(content({ notification: { title: 'Hi', body: ' \n ' } }), {}, {}, NOW));
    assert.deepEqual([b.title, b.content], ['Hi', 'Hi']);
    assert.equal(validateMeizuMessage({ noticeBarInfo: t }), undefined);
  });
  it('both blank, or no notification: DataOnlyUnsupported', () => {
    for (const notification of [{ title: ' ', body: '' }, undefined]) {
      const r = buildMeizuMessage(content({ notification }), {}, {}, NOW);
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.outcome.kind, 'failed');
      assert.equal(!r.ok && code(r.outcome), 'DataOnlyUnsupported');
    }
  });
  it('title ≤ 32 and content ≤ 100 UTF-16 units: emoji are not counted as one', () => {
    const b = bar(buildMeizuMessage(content({ notification: { title: '😀'.repeat(30), body: '🚚'.repeat(80) } }), {}, {}, NOW));
    assert.equal((b.title as string).length, 32);
    assert.equal((b.content as string).length, 100);
    assert.equal(b.title, '😀'.repeat(16));
    assert.equal(validateMeizuMessage({ noticeBarInfo: b }), undefined);
    // An odd limit falls before the pair rather than through it.
    const odd = bar(buildMeizuMessage(content({ notification: { title: `x${'😀'.repeat(20)}`, body: 'b' } }), {}, {}, NOW));
    assert.equal(odd.title, `x${'😀'.repeat(15)}`);
  });
  it('the mock refuses a title longer than 32 UTF-16 units', () => {
    assert.match(validateMeizuMessage({ noticeBarInfo: { title: '😀'.repeat(17), content: 'c' } }) ?? '', /title/);
    assert.match(validateMeizuMessage({ noticeBarInfo: { title: 't', content: '😀'.repeat(51) } }) ?? '', /content/);
  });
});
