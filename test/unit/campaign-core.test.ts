import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CampaignContent } from '../../src/campaigns/content.js';
import { compileTemplate, render, TemplateError } from '../../src/campaigns/template.js';
import { inTestSlice, pickVariant } from '../../src/campaigns/variants.js';
import { localDay, quietUntil, wallTimeIn } from '../../src/campaigns/zones.js';

test('templates: variables, fallbacks, errors', () => {
  const t = compileTemplate('Hi {{first_name|there}}, {{ city }}!');
  assert.equal(render(t, { first_name: 'Ada', city: 'Oslo' }), 'Hi Ada, Oslo!');
  assert.equal(render(t, {}), 'Hi there, !');
  assert.throws(() => compileTemplate('Hi {{name'), TemplateError);
  assert.throws(() => compileTemplate('{{ }}'), TemplateError);
  assert.equal(render(compileTemplate('no vars }} here'), {}), 'no vars }} here');
});

test('content: exact locale, then language, then the default; variants merge over the base', () => {
  const c = new CampaignContent({
    notification: { title: 'Sale', body: 'Hi {{n|there}}' },
    localized: { zh: { title: '促销' }, 'zh-TW': { title: '特賣' } },
    variants: [{ name: 'A', weight: 1 }, { name: 'B', weight: 1, notification: { title: 'Last day' } }],
  });
  assert.deepEqual(c.render({ variant: 'A', locale: 'zh-TW', attributes: {} }).notification, { title: '特賣', body: 'Hi there' });
  assert.deepEqual(c.render({ variant: 'A', locale: 'zh_CN', attributes: { n: '明' } }).notification, { title: '促销', body: 'Hi 明' });
  assert.deepEqual(c.render({ variant: 'B', locale: 'en', attributes: {} }).notification, { title: 'Last day', body: 'Hi there' });
  assert.equal(c.uniform, false);
  assert.equal(new CampaignContent({ notification: { title: 'plain' } }).uniform, true);
});

test('variants: deterministic per device, split by weight', () => {
  const variants = [{ name: 'A', weight: 70 }, { name: 'B', weight: 30 }];
  assert.equal(pickVariant(variants, 'cmp_1', 'dev-1'), pickVariant(variants, 'cmp_1', 'dev-1'));
  let a = 0;
  let slice = 0;
  for (let i = 0; i < 10_000; i++) {
    if (pickVariant(variants, 'cmp_1', `dev-${i}`) === 'A') a++;
    if (inTestSlice(20, 'cmp_1', `dev-${i}`)) slice++;
  }
  assert.ok(Math.abs(a - 7000) < 300, `A drew ${a}`);
  assert.ok(Math.abs(slice - 2000) < 200, `slice ${slice}`);
});

test('zones: wall time per zone, quiet hours across midnight, the local day', () => {
  assert.equal(new Date(wallTimeIn('2026-12-24T09:00', 'Asia/Shanghai')).toISOString(), '2026-12-24T01:00:00.000Z');
  assert.equal(new Date(wallTimeIn('2026-07-01T09:00', 'Europe/Berlin')).toISOString(), '2026-07-01T07:00:00.000Z');
  const q = { start: '22:00', end: '08:00' };
  assert.equal(new Date(quietUntil(Date.parse('2026-12-24T14:00:00Z'), 'Asia/Tokyo', q)!).toISOString(), '2026-12-24T23:00:00.000Z');
  assert.equal(quietUntil(Date.parse('2026-12-24T14:00:00Z'), 'Europe/Berlin', q), null);
  assert.equal(localDay(Date.parse('2026-12-24T20:00:00Z'), 'Asia/Tokyo'), '2026-12-25');
});
