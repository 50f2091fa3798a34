import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outcome } from '../../providers/types.js';
import { notifyIdFrom } from '../../providers/shared/ids.js';
import xiaomi, {
  XIAOMI_MAX_TTL_MARKETING_SEC,
  buildXiaomiForm,
  classifyXiaomiAnswer,
  parseXiaomiReceipt,
  xiaomiCredentialSchema,
  xiaomiOverridesSchema,
} from '../../providers/xiaomi.js';
import { validateXiaomiForm } from '../mocks/vendors/xiaomi.js';
import { codeOf, FIXED_NOW, http, netErr, orderContentAt } from '../helpers/vendor-fixtures.js';

const NOW = FIXED_NOW;
const content = orderContentAt(NOW);

// ---------------------------------------------------------------------------------------------

describe('xiaomi: form', () => {
  const cred = { appSecret: 's', packageName: 'com.example.relay' };
  const check = (f: URLSearchParams) => validateXiaomiForm(f, { packageName: cred.packageName });

  it('builds a notification form the mock accepts', () => {
    const f = buildXiaomiForm(content({ options: { ttl: 60, priority: 'high', collapseKey: 'c-1', category: 'im' } }), ['r1', 'r2'], { ...cred, categoryMap: { im: { channelId: '108423' } }, callbackUrl: 'https://relay.example/v1/receipts/xiaomi/a?secret=x' }, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('registration_id'), 'r1,r2');
    assert.equal(f.get('restricted_package_name'), 'com.example.relay');
    assert.equal(f.get('pass_through'), '0');
    assert.equal(f.get('title'), 'Order shipped');
    assert.equal(f.get('description'), 'Your order 42 is on its way');
    assert.equal(f.get('time_to_live'), String(3_600_000));
    assert.equal(f.get('notify_id'), String(notifyIdFrom('c-1')));
    assert.equal(f.get('extra.notify_effect'), '2');
    assert.equal(f.get('extra.intent_uri'), 'app://orders/42');
    assert.equal(f.get('extra.channel_id'), '108423');
    assert.equal(f.get('extra.relay_id'), 'm-1');
    assert.equal(f.get('extra.callback.param'), 'm-1');
    assert.equal(f.get('extra.callback.type'), '19');
    assert.match(f.get('extra.jobkey') ?? '', /^[0-9A-Za-z][0-9A-Za-z_-]{0,11}$/);
    assert.deepEqual(JSON.parse(f.get('payload') ?? ''), { orderId: '42', n: 3, relay_id: 'm-1' });
  });

  it('pass-through, long titles, URL click, notify id per message, TTL caps', () => {
    const p = buildXiaomiForm(content({ notification: undefined }), ['r'], cred, NOW)!;
    assert.equal(check(p), undefined);
    assert.equal(p.get('pass_through'), '1');
    assert.equal(p.get('title'), null);
    const long = buildXiaomiForm(content({ notification: { title: 'x'.repeat(80), body: 'y'.repeat(300), clickAction: 'https://w.example' } }), ['r'], cred, NOW)!;
    assert.equal(check(long), undefined);
    assert.equal(long.get('title')?.length, 49);
    assert.equal(long.get('extra.notify_effect'), '3');
    assert.equal(long.get('extra.web_uri'), 'https://w.example');
    // Without a collapse key each message gets its own notify id (else Xiaomi shows only the latest).
    assert.equal(buildXiaomiForm(content(), ['r'], cred, NOW)!.get('notify_id'), String(notifyIdFrom('m-1')));
    const mk = buildXiaomiForm(content({ expiresAt: NOW + 30 * 86_400_000, options: { ttl: 1, priority: 'normal', category: 'marketing' } }), ['r'], cred, NOW)!;
    assert.equal(mk.get('time_to_live'), String(XIAOMI_MAX_TTL_MARKETING_SEC * 1000));
    assert.equal(buildXiaomiForm(content({ expiresAt: NOW }), ['r'], cred, NOW), undefined);
  });

  it('a blank title or description is absent: each falls back on the other', () => {
    const t = buildXiaomiForm(content({ notification: { title: '   ', body: 'Your order 42 is on its way' } }), ['r'], cred, NOW)!;
    assert.equal(check(t), undefined);
    assert.equal(t.get('pass_through'), '0');
    assert.equal(t.get('title'), 'Your order 42 is on its way');
    assert.equal(t.get('description'), 'Your order 42 is on its way');
    const b = buildXiaomiForm(content({ notification: { title: 'Order shipped', body: '\n\t ' } }), ['r'], cred, NOW)!;
    assert.equal(check(b), undefined);
    assert.equal(b.get('title'), 'Order shipped');
    assert.equal(b.get('description'), 'Order shipped');
    // Leading blanks are dropped, so the cut to 49 can never leave only whitespace.
    const lead = buildXiaomiForm(content({ notification: { title: `${' '.repeat(60)}Hi`, body: 'b' } }), ['r'], cred, NOW)!;
    assert.equal(check(lead), undefined);
    assert.equal(lead.get('title'), 'Hi');
  });

  it('both blank: a pass-through (data) message, as with no notification', () => {
    const f = buildXiaomiForm(content({ notification: { title: ' ', body: '\u3000', clickAction: 'app://x' } }), ['r'], cred, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('pass_through'), '1');
    assert.equal(f.get('title'), null);
    assert.equal(f.get('description'), null);
    assert.equal(f.get('extra.notify_effect'), null);
  });

  it('title < 50 and description < 128 in UTF-16 units: emoji count 2, pairs are not split', () => {
    const f = buildXiaomiForm(content({ notification: { title: '😀'.repeat(40), body: `x${'🚚'.repeat(100)}` } }), ['r'], cred, NOW)!;
    assert.equal(check(f), undefined);
    assert.equal(f.get('title'), '😀'.repeat(24));
    assert.equal(f.get('description'), `x${'🚚'.repeat(63)}`);
    assert.deepEqual(check(new URLSearchParams({ ...Object.fromEntries(f), title: '😀'.repeat(25) })), { code: 10017, description: 'title must be shorter than 50 characters' });
  });

  it('jobkey: ≤ 12 chars, first alphanumeric, the same for every attempt of one message', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const id = `m-${i}`;
      const key = buildXiaomiForm(content({ messageId: id }), ['r'], cred, NOW)!.get('extra.jobkey') ?? '';
      assert.match(key, /^[0-9A-Za-z][0-9A-Za-z_-]{0,11}$/, `message ${id}`);
      assert.equal(buildXiaomiForm(content({ messageId: id }), ['r2'], cred, NOW + 60_000)!.get('extra.jobkey'), key);
      seen.add(key);
    }
    // Equal jobkeys make the device drop the later message: distinct messages must not share one.
    assert.equal(seen.size, 2000);
  });

  it('the mock refuses a jobkey over 12 chars or starting with "_"', () => {
    const f = buildXiaomiForm(content(), ['r'], cred, NOW)!;
    const withKey = (k: string) => check(new URLSearchParams({ ...Object.fromEntries(f), 'extra.jobkey': k }));
    assert.equal(withKey('abc-DEF_123x'), undefined);
    assert.equal(withKey('abc-DEF_123xy')?.code, 10017);
    assert.equal(withKey('_abc')?.code, 10017);
  });

  it('credential channelId default, overrides merged last', () => {
    const f = buildXiaomiForm(
      content({ overrides: { xiaomi: { channelId: 'ovr', notifyType: 2, extra: { notify_foreground: '0' }, fields: { time_to_send: '1' } } } }),
      ['r'],
      { ...cred, channelId: 'dflt' },
      NOW,
    )!;
    assert.equal(f.get('extra.channel_id'), 'ovr');
    assert.equal(f.get('notify_type'), '2');
    assert.equal(f.get('extra.notify_foreground'), '0');
    assert.equal(f.get('time_to_send'), '1');
    assert.equal(buildXiaomiForm(content(), ['r'], { ...cred, channelId: 'dflt' }, NOW)!.get('extra.channel_id'), 'dflt');
    assert.equal(xiaomiOverridesSchema.safeParse({ notifyType: 9 }).success, false);
  });

  it('credential schema and describe', () => {
    assert.equal(xiaomiCredentialSchema.safeParse(cred).success, true);
    assert.equal(xiaomiCredentialSchema.safeParse({ appSecret: 's', packageName: 'nodots' }).success, false);
    const d = xiaomi.describe({ appSecret: 'secret!', packageName: 'com.a.b', callbackUrl: 'https://h/x?secret=zzz' });
    assert.deepEqual(d, { packageName: 'com.a.b', callbackUrl: 'https://h/x' });
    assert.equal(xiaomi.qps?.(cred), 500);
  });
});

describe('xiaomi: answer classification', () => {
  it('ok with bad_regids / bad_regIds', () => {
    for (const field of ['bad_regids', 'bad_regIds']) {
      const out = classifyXiaomiAnswer(http(200, { result: 'ok', code: 0, data: { id: 'scm1', [field]: 'b' } }), ['a', 'b']);
      assert.deepEqual(out[0], { kind: 'sent', providerId: 'scm1' });
      assert.equal(out[1]?.kind, 'invalid');
      assert.equal(codeOf(out[1]), 'bad_regids');
    }
  });
  it('ok with day_quota / day_acked / channel_exceed_quota stays sent (❓ their meaning on success)', () => {
    const answers = [
      { day_quota: '0', day_acked: '7' },
      { day_quota: '100', day_acked: '100' },
      { day_quota: '100', day_acked: '250', channel_exceed_quota: 'true' },
      { channel_exceed_quota: 'no_channel:2 a:3' },
    ];
    for (const extra of answers) {
      const out = classifyXiaomiAnswer(http(200, { result: 'ok', code: 0, data: { id: 'scm9', ...extra } }), ['a', 'b']);
      assert.deepEqual(out, [{ kind: 'sent', providerId: 'scm9' }, { kind: 'sent', providerId: 'scm9' }], JSON.stringify(extra));
    }
  });
  const table: Array<[number, number, Outcome['kind'], string]> = [
    [200, 10022, 'retry', '10022'],
    [200, 10023, 'retry', '10023'],
    [200, 10024, 'retry', '10024'],
    [200, 10027, 'retry', '10027'],
    [200, 10028, 'retry', '10028'],
    [200, 10001, 'retry', '10001'],
    [200, 10002, 'retry', '10002'],
    [200, 10003, 'retry', '10003'],
    [200, 10009, 'retry', '10009'],
    [200, -1, 'retry', '-1'],
    [200, 20301, 'retry', '20301'],
    [500, 10001, 'retry', '10001'],
    [200, 22008, 'failed', '22008'],
    [200, 22022, 'failed', '22022'],
    [200, 22001, 'failed', '22001'],
    [200, 10026, 'failed', '10026'],
    [200, 22101, 'failed', 'quota'],
    [200, 10018, 'failed', '10018'],
    [200, 10016, 'failed', '10016'],
    [200, 10017, 'failed', '10017'],
    [200, 22103, 'failed', '22103'],
    [200, 100, 'failed', '100'],
  ];
  for (const [status, code, kind, want] of table) {
    it(`code ${code} (HTTP ${status}) → ${kind} ${want}`, () => {
      const out = classifyXiaomiAnswer(http(status, { result: 'error', code, description: 'd', reason: 'r' }), ['a']);
      assert.equal(out[0]?.kind, kind);
      assert.equal(codeOf(out[0]), want);
      assert.equal((out[0] as { reason: { message: string } }).reason.message, 'd: r');
    });
  }
  it('rate limit keeps Retry-After; quota keeps the vendor code; HTTP-only answers', () => {
    const rl = classifyXiaomiAnswer(http(200, { result: 'error', code: 10027 }, { 'retry-after': '4' }), ['a']);
    assert.equal((rl[0] as { afterMs?: number }).afterMs, 4000);
    const q = classifyXiaomiAnswer(http(200, { result: 'error', code: 22101 }), ['a']);
    assert.equal((q[0] as any).reason.evidence.vendorCode, 22101);
    assert.equal(classifyXiaomiAnswer(http(429, 'x'), ['a'])[0]?.kind, 'retry');
    assert.equal(classifyXiaomiAnswer(http(401, 'x'), ['a'])[0]?.kind, 'failed');
    assert.equal(classifyXiaomiAnswer(netErr, ['a'])[0]?.kind, 'retry');
  });
});

describe('xiaomi: receipts', () => {
  const form = (data: unknown) => ({
    headers: {},
    contentType: 'application/x-www-form-urlencoded',
    rawBody: new URLSearchParams({ data: typeof data === 'string' ? data : JSON.stringify(data) }).toString(),
  });
  it('delivered / clicked / invalid per target', () => {
    const ev = parseXiaomiReceipt(
      form({
        scm1: { barStatus: 'Enable', type: 1, targets: 'r1,r2', timestamp: 1552470320982, param: 'm-1', jobkey: 'j' },
        scm2: { type: 2, targets: 'r3', timestamp: 1552470320982, param: 'm-2' },
        scm3: { type: 16, targets: 'r4', timestamp: 1552470320982 },
        scm4: { type: 64, targets: 'r5' },
      }),
    );
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['delivered', 'scm1', 'r1', 'm-1'],
        ['delivered', 'scm1', 'r2', 'm-1'],
        ['opened', 'scm2', 'r3', 'm-2'],
        ['invalid', 'scm3', 'r4', undefined],
      ],
    );
    assert.equal(ev[0]?.at, 1552470320982);
    assert.equal(ev[3]?.reason?.code, 'callback_type_16');
  });
  it('type is a bitmask: one event per bit set, strongest first', () => {
    const ev = parseXiaomiReceipt(
      form({
        scm1: { type: 3, targets: 'r1,r2', timestamp: 1552470320982, param: 'm-1' },
        scm2: { type: '19', targets: 'r3', param: 'm-2' },
        scm3: { type: 17, targets: 'r4' },
        scm4: { type: 1 | 64, targets: 'r5' },
        scm5: { type: 32 | 128, targets: 'r6' },
      }),
    );
    assert.deepEqual(
      ev.map((e) => [e.event, e.providerId, e.token, e.messageId]),
      [
        ['opened', 'scm1', 'r1', 'm-1'],
        ['opened', 'scm1', 'r2', 'm-1'],
        ['delivered', 'scm1', 'r1', 'm-1'],
        ['delivered', 'scm1', 'r2', 'm-1'],
        ['invalid', 'scm2', 'r3', 'm-2'],
        ['opened', 'scm2', 'r3', 'm-2'],
        ['delivered', 'scm2', 'r3', 'm-2'],
        ['invalid', 'scm3', 'r4', undefined],
        ['delivered', 'scm3', 'r4', undefined],
        ['delivered', 'scm4', 'r5', undefined],
      ],
    );
    assert.ok(ev.every((e) => e.event !== 'delivered' || e.reason === undefined));
    assert.equal(ev.find((e) => e.event === 'invalid')?.reason?.code, 'callback_type_16');
    assert.equal(ev[0]?.at, 1552470320982);
  });
  it('accepts a JSON body too', () => {
    const ev = parseXiaomiReceipt({ headers: {}, contentType: 'application/json', rawBody: JSON.stringify({ data: JSON.stringify({ s: { type: 1, targets: 'r' } }) }) });
    assert.equal(ev.length, 1);
  });
  it('malformed bodies throw', () => {
    assert.throws(() => parseXiaomiReceipt(form('{bad')), /not JSON/);
    assert.throws(() => parseXiaomiReceipt({ headers: {}, contentType: 'application/x-www-form-urlencoded', rawBody: 'x=1' }), /missing/);
    assert.throws(() => parseXiaomiReceipt(form({})), /keyed by message id/);
    assert.throws(() => parseXiaomiReceipt(form({ s: { targets: 'r' } })), /entry s/);
    assert.throws(() => parseXiaomiReceipt({ headers: {}, contentType: 'application/json', rawBody: 'nope' }), /not JSON/);
  });
});
