/**
 * Starts one vendor mock (test/mocks/vendors/*) as a standalone process, for benchmarks that
 * want the mock's CPU off their own event loop:
 *
 *   tsx bench/vendor-mock-server.ts --vendor huawei [--port 0] [--record]
 *
 * Prints one JSON line on stdout once listening — `{"vendor","port","url","credential":{…}}`,
 * where `credential` is the `PUT /v1/apps/:app/credentials/<vendor>` body the mock accepts — and
 * serves until SIGTERM / SIGINT (or, with `--exit-on-stdin-close`, until stdin closes).
 *
 * The mocks record every request for test assertions and have no switch to turn that off, so
 * unless `--record` is given the recorded arrays are emptied every 250 ms (after counting them):
 * memory stays flat on long runs. Writing `stats` + newline to stdin answers one JSON line
 * `{"requests":N}`: the HTTP requests served so far (token endpoint calls included).
 */
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startHonorMock } from '../test/mocks/vendors/honor.js';
import { startHuaweiMock } from '../test/mocks/vendors/huawei.js';
import { startMeizuMock } from '../test/mocks/vendors/meizu.js';
import { startOppoMock } from '../test/mocks/vendors/oppo.js';
import { startVivoMock } from '../test/mocks/vendors/vivo.js';
import { startXiaomiMock } from '../test/mocks/vendors/xiaomi.js';

export const MOCK_VENDORS = ['huawei', 'honor', 'xiaomi', 'oppo', 'vivo', 'meizu'] as const;
export type MockVendor = (typeof MOCK_VENDORS)[number];

export interface StartedVendorMock {
  vendor: MockVendor;
  port: number;
  url: string;
  /** The credential body (without `qps` / `callbackUrl`) the mock accepts. */
  credential: Record<string, string>;
  /** Arrays the mock records into (requests first); emptied when recording is off. */
  recorded: unknown[][];
  close(): Promise<void>;
}

/** Starts `vendor`'s mock in this process. */
export async function startVendorMock(vendor: MockVendor, port = 0): Promise<StartedVendorMock> {
  switch (vendor) {
    case 'huawei': {
      const m = await startHuaweiMock({ port });
      return { vendor, port: m.port, url: m.url, credential: { appId: m.appId, clientSecret: m.clientSecret }, recorded: [m.requests, m.sends], close: m.close };
    }
    case 'honor': {
      const m = await startHonorMock({ port });
      return {
        vendor, port: m.port, url: m.url,
        credential: { appId: m.appId, clientId: m.clientId, clientSecret: m.clientSecret },
        recorded: [m.requests, m.sends], close: m.close,
      };
    }
    case 'xiaomi': {
      const m = await startXiaomiMock({ port });
      return { vendor, port: m.port, url: m.url, credential: { appSecret: m.appSecret, packageName: m.packageName }, recorded: [m.requests, m.sends], close: m.close };
    }
    case 'oppo': {
      const m = await startOppoMock({ port });
      return { vendor, port: m.port, url: m.url, credential: { appKey: m.appKey, masterSecret: m.masterSecret }, recorded: [m.requests], close: m.close };
    }
    case 'vivo': {
      const m = await startVivoMock({ port });
      return { vendor, port: m.port, url: m.url, credential: { appId: m.appId, appKey: m.appKey, appSecret: m.appSecret }, recorded: [m.requests], close: m.close };
    }
    case 'meizu': {
      const m = await startMeizuMock({ port });
      return { vendor, port: m.port, url: m.url, credential: { appId: m.appId, appSecret: m.appSecret }, recorded: [m.requests], close: m.close };
    }
  }
}

function isMockVendor(v: string): v is MockVendor {
  return (MOCK_VENDORS as readonly string[]).includes(v);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      vendor: { type: 'string' },
      port: { type: 'string', default: '0' },
      record: { type: 'boolean', default: false },
      'exit-on-stdin-close': { type: 'boolean', default: false },
    },
  });
  const vendor = values.vendor ?? '';
  if (!isMockVendor(vendor)) {
    console.error(`--vendor must be one of ${MOCK_VENDORS.join(', ')} (got ${JSON.stringify(vendor)})`);
    process.exit(2);
  }
  const mock = await startVendorMock(vendor, Number(values.port));
  const [requests] = mock.recorded;
  let counted = 0;
  const flush = () => {
    counted += requests!.length;
    for (const list of mock.recorded) list.length = 0;
  };
  const requestCount = () => (values.record ? requests!.length : counted + requests!.length);
  const timer = values.record ? undefined : setInterval(flush, 250);

  let closing = false;
  const shutdown = async () => {
    if (closing) return;
    closing = true;
    if (timer) clearInterval(timer);
    await mock.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'stats') process.stdout.write(`${JSON.stringify({ requests: requestCount() })}\n`);
  });
  // For a parent that pipes stdin: if it dies without signalling, do not outlive it.
  if (values['exit-on-stdin-close']) rl.on('close', () => void shutdown());

  process.stdout.write(`${JSON.stringify({ vendor, port: mock.port, url: mock.url, credential: mock.credential })}\n`);
}

// Only when run as a script, so the benchmark can import `startVendorMock` / `MOCK_VENDORS`.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
