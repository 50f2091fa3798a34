/**
 * What the APNs benchmarks share: a signing key, the test PKI, the APNs mock in its own process,
 * a node-apn client on it and the token for device i.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import apn from '@parse/node-apn';
import { type Isolation, client } from '../../test/helpers/harness.js';
import { testPki } from '../../test/mocks/tls.js';

export const TEAM = 'TEAMBENCH1';
export const KID = 'KEYBENCH01';
export const BUNDLE = 'com.example.bench';

const dir = mkdtempSync(join(tmpdir(), 'relay-bench-'));
const p8 = generateKeyPairSync('ec', { namedCurve: 'P-256' });
export const keyPem = p8.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
writeFileSync(join(dir, 'pub.pem'), p8.publicKey.export({ type: 'spki', format: 'pem' }).toString());
export const pki = testPki();
/** Child processes trust the mock's certificate authority. */
export const childEnv = { ...process.env, NODE_EXTRA_CA_CERTS: pki.caPath };
export const token = (i: number) => 'a' + i.toString(16).padStart(63, '0');

export async function firstLine(child: ChildProcess): Promise<string> {
  const rl = createInterface({ input: child.stdout! });
  const [line] = (await once(rl, 'line')) as [string];
  rl.close();
  return line;
}

/**
 * Reads a started Relay's log until the API process and each forked worker process have said
 * `relay started`; returns the API's port. Later lines go to `rest`.
 */
export async function apiPortWhenReady(child: ChildProcess, rest: (line: string) => void = () => undefined): Promise<number> {
  const rl = createInterface({ input: child.stdout! });
  let apiPort = 0;
  let ready = 0;
  let workers = 0;
  for await (const line of rl) {
    const m = /"port":(\d+)/.exec(line);
    if (m && line.includes('relay started')) apiPort = Number(m[1]);
    if (line.includes('relay started')) ready++;
    const w = /"workerProcesses":(\d+)/.exec(line);
    if (w) workers = Number(w[1]);
    if (apiPort && ready >= 1 + workers) break;
  }
  rl.on('line', rest);
  return apiPort;
}

export async function startMock(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/mocks/apns-server.ts', '--port', '0', '--max-streams', '1000',
      '--team', TEAM, '--key-id', KID, '--public-key-file', join(dir, 'pub.pem'), '--bundle-id', BUNDLE],
    { env: childEnv, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return { child, port: (JSON.parse(await firstLine(child)) as { port: number }).port };
}

/** The client Relay uses, pointed at the mock. */
export function apnProvider(port: number): apn.Provider {
  return new apn.Provider({
    token: { key: keyPem, keyId: KID, teamId: TEAM },
    address: '127.0.0.1',
    port,
    ca: [pki.caPem],
    production: false,
    connectionRetryLimit: 0,
  } as apn.ProviderOptions);
}

export interface BenchRelay {
  child: ChildProcess;
  base: string;
  env: Record<string, string>;
  /** An admin key of app `bench`, which has APNs credentials for the mock, and a client using it. */
  key: string;
  api: ReturnType<typeof client>;
}

/**
 * `src/main.ts` with every role (the worker role in forked processes) on PostgreSQL, the APNs
 * endpoint on the mock; `BENCH_RELAY_X=…` sets Relay's `X`. Ready once the API has its port and
 * every worker process has started.
 */
export async function startBenchRelay(iso: Isolation, mockPort: number): Promise<BenchRelay> {
  const env = iso.env({
    APNS_ENDPOINT: `https://127.0.0.1:${mockPort}`,
    APNS_MAX_STREAMS: '1000',
    LOG_LEVEL: 'info',
    WORKER_PROCESSES: 'auto',
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_RELAY_')).map(([k, v]) => [k.slice('BENCH_RELAY_'.length), v!])),
  });
  const profile = process.env.RELAY_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.RELAY_CPU_PROF] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', 'src/main.ts'], {
    env: { ...childEnv, ...env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const apiPort = await apiPortWhenReady(child, (l) => {
    if (process.env.BENCH_LOG) console.error(l);
  });
  const base = `http://127.0.0.1:${apiPort}`;
  const op = client(base, env.ADMIN_TOKEN);
  await op('POST', '/v1/apps', { id: 'bench', name: 'bench' });
  const key = (await op('POST', '/v1/apps/bench/keys', { scopes: ['admin'] })).body.key as string;
  const api = client(base, key);
  const cred = await api('PUT', '/v1/apps/bench/credentials/apns', { teamId: TEAM, keyId: KID, key: keyPem, bundleId: BUNDLE, production: false });
  if (cred.status !== 200) throw new Error(`credentials: ${JSON.stringify(cred.body)}`);
  return { child, base, env, key, api };
}

export async function stopBenchRelay(r: BenchRelay): Promise<void> {
  r.child.kill('SIGTERM');
  await once(r.child, 'exit');
}
