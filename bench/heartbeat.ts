/**
 * Smart-heartbeat benchmark (README: Tests and benchmarks): one RelayDevice (sdk/) behind a NAT-simulating proxy
 * (test/helpers/nat-proxy.ts: an idle mapping is dropped silently after T) in front of a real
 * GatewayServer, with messages pushed now and then. Time is scaled down: the device runs the
 * SDK's default heartbeat config (WeChat's numbers) scaled by T / natRealSec, i.e. it lives
 * through a carrier NAT of natRealSec (default 300 s, China Mobile) in T milliseconds.
 * Prints one JSON line:
 * - convergedOverT: the settled interval / T (target: within 15 % below T, i.e. in [0.85, 1));
 * - heartbeatsOverMinimum: heartbeats sent / the fewest an oracle that knows T needs for the same
 *   run and the same message traffic (one beat just before each T of silence) (target ≤ 1.2);
 *   steadyOverMinimum is the same after convergence;
 * - messagesLost: pushed but never shown (target 0); duplicatesShown (must be 0);
 * - messagesWaitedForReconnect: shown only on a later connection than the one they were pushed on
 *   (a probe that found T lost the mapping under them); steady… counts those pushed after
 *   convergence (target 0).
 *
 *   npx tsx bench/heartbeat.ts [--t-ms 2000] [--nat-real-sec 300] [--duration-t 150] [--message-every-t 12]
 *     [--message-min-t 0.625 --message-max-t 1.125]   (pushes every 5–9 s under an 8 s NAT)
 */
import { parseArgs } from 'node:util';
import { NatProxy } from '../test/helpers/nat-proxy.js';
import { Lead, waitFor } from '../test/sdk/harness.js';
import { DEFAULT_HEARTBEAT, RelayDevice } from '../sdk/src/index.js';

const { values } = parseArgs({
  options: {
    't-ms': { type: 'string', default: '2000' },
    'nat-real-sec': { type: 'string', default: '300' },
    'duration-t': { type: 'string', default: '150' },
    'message-every-t': { type: 'string', default: '12' },
    // Push spacing drawn uniformly from [min, max] × T (default: 0.5–1.5 × message-every-t).
    'message-min-t': { type: 'string' },
    'message-max-t': { type: 'string' },
  },
});
const T_MS = Number(values['t-ms']);
const NAT_REAL_SEC = Number(values['nat-real-sec']);
const DURATION_MS = Number(values['duration-t']) * T_MS;
const MESSAGE_EVERY_MS = Number(values['message-every-t']) * T_MS;
const MESSAGE_MIN_MS = values['message-min-t'] !== undefined ? Number(values['message-min-t']) * T_MS : MESSAGE_EVERY_MS * 0.5;
const MESSAGE_MAX_MS = values['message-max-t'] !== undefined ? Number(values['message-max-t']) * T_MS : MESSAGE_EVERY_MS * 1.5;
const nextGap = () => MESSAGE_MIN_MS + Math.random() * (MESSAGE_MAX_MS - MESSAGE_MIN_MS);
const k = T_MS / 1000 / NAT_REAL_SEC; // scaled seconds per real second

const heartbeat = {
  initialSec: DEFAULT_HEARTBEAT.initialSec * k,
  stepSec: DEFAULT_HEARTBEAT.stepSec * k,
  minSec: DEFAULT_HEARTBEAT.minSec * k,
  maxSec: DEFAULT_HEARTBEAT.maxSec * k,
  marginSec: DEFAULT_HEARTBEAT.marginSec * k,
  trustBeats: DEFAULT_HEARTBEAT.trustBeats,
  failLimit: DEFAULT_HEARTBEAT.failLimit,
  // 10 s scaled would be a few ms: below this event loop's jitter. 150 ms here.
  ackTimeoutSec: Math.max(10 * k, 0.15),
};

const lead = await Lead.start({ sweepIntervalMs: 50 });
const nat = new NatProxy({ target: { host: '127.0.0.1', port: lead.tcpPort }, idleTimeoutMs: T_MS, checkIntervalMs: 5 });
await nat.listen();
let natDrops = 0;
nat.on('drop', () => natDrops++);

const deviceId = 'bench-hb-1';
const dev = new RelayDevice({
  url: `mqtt://127.0.0.1:${nat.port}`,
  deviceId,
  password: lead.password(deviceId),
  network: 'bench-nat',
  heartbeat,
  reconnect: { minSec: 0.02, maxSec: 0.5 },
  connectTimeoutSec: 1,
});

const start = performance.now();
const traffic: number[] = []; // instants the link carried a message (delivery + PUBACK)
const shown: string[] = [];
let convergedAt = -1;
let beatsAtConvergence = 0;
// A push waited for a reconnect when it was shown on a later connection than the one it was sent on.
const sentOnConnect = new Map<string, { connects: number; steady: boolean }>();
let waitedForReconnect = 0;
let steadyWaitedForReconnect = 0;
dev.on('message', (m) => {
  shown.push(m.id);
  traffic.push(performance.now());
  const at = sentOnConnect.get(m.id);
  if (at && dev.stats.connects > at.connects) {
    waitedForReconnect++;
    if (at.steady) steadyWaitedForReconnect++;
  }
});
dev.on('heartbeat', (h) => {
  if (convergedAt < 0 && h.state === 'stable') {
    convergedAt = performance.now();
    beatsAtConvergence = dev.stats.heartbeats + dev.stats.reports;
  }
});

await dev.connect();
const sent: string[] = [];
let nextMessage = start + nextGap();
while (performance.now() - start < DURATION_MS) {
  const t = performance.now();
  if (t >= nextMessage) {
    const id = `bench-m-${sent.length + 1}`;
    sent.push(id);
    sentOnConnect.set(id, { connects: dev.stats.connects, steady: convergedAt > 0 });
    lead.send(deviceId, id);
    nextMessage = t + nextGap();
  }
  await new Promise((r) => setTimeout(r, Math.max(1, Math.min(nextMessage - t, 100))));
}
const end = performance.now();
const beats = dev.stats.heartbeats + dev.stats.reports;
// Let redeliveries of the last messages finish before counting losses.
await waitFor(() => sent.every((id) => shown.includes(id)), 10 * T_MS + 5000, 'the last messages').catch(() => undefined);

/** The fewest beats that keep a NAT of T open over [from, to], given the message traffic. */
function minimumBeats(from: number, to: number): number {
  const marks = [from, ...traffic.filter((x) => x > from && x < to), to];
  let n = 0;
  for (let i = 1; i < marks.length; i++) n += Math.floor((marks[i]! - marks[i - 1]!) / T_MS);
  return n;
}

const minimum = minimumBeats(start, end);
const steadyMinimum = convergedAt > 0 ? minimumBeats(convergedAt, end) : 0;
const converged = dev.heartbeatState === 'stable' ? dev.intervalSec : null;
const convergedOverT = converged === null ? null : converged / (T_MS / 1000);
const lost = sent.filter((id) => !shown.includes(id)).length;
const duplicatesShown = shown.length - new Set(shown).size;
const round = (x: number | null, d = 3) => (x === null ? null : Math.round(x * 10 ** d) / 10 ** d);

const result = {
  bench: 'heartbeat',
  tMs: T_MS,
  models: `NAT ${NAT_REAL_SEC} s scaled to ${T_MS} ms; SDK defaults ×${round(k, 6)}`,
  heartbeatConfig: Object.fromEntries(Object.entries(heartbeat).map(([key, v]) => [key, round(v, 4)])),
  durationSec: round((end - start) / 1000, 1),
  convergedSec: round(converged),
  convergedOverT: round(convergedOverT),
  convergedAfterT: convergedAt > 0 ? round((convergedAt - start) / T_MS, 1) : null,
  heartbeats: beats,
  minimumHeartbeats: minimum,
  heartbeatsOverMinimum: round(beats / minimum),
  steadyOverMinimum: convergedAt > 0 ? round((beats - beatsAtConvergence) / steadyMinimum) : null,
  heartbeatFailures: dev.stats.heartbeatFailures,
  connects: dev.stats.connects,
  natDrops,
  messagesSent: sent.length,
  messagesLost: lost,
  messagesWaitedForReconnect: waitedForReconnect,
  steadyMessagesWaitedForReconnect: steadyWaitedForReconnect,
  duplicatesShown,
  pass:
    convergedOverT !== null && convergedOverT >= 0.85 && convergedOverT < 1 && beats <= 1.2 * minimum && lost === 0 && duplicatesShown === 0 && steadyWaitedForReconnect === 0,
};
console.log(JSON.stringify(result));

await dev.close();
await nat.close();
await lead.close();
