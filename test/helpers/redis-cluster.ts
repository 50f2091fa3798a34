import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { redisAnswers } from '../../src/redis.js';

/**
 * A Redis Cluster of the test's own: three primaries without replicas, each a redis-server with
 * cluster mode on, its own temp directory and a free port (the cluster bus takes port + 10000,
 * which must be free too), joined by `redis-cli --cluster create`. `stop()` kills them and
 * removes their directories.
 */
export interface OwnCluster {
  nodes: { host: string; port: number }[];
  /** REDIS_CLUSTER_NODES for Relay. */
  env: string;
  stop(): Promise<void>;
}

async function bindable(port: number): Promise<boolean> {
  const srv = createServer();
  srv.on('error', () => undefined);
  try {
    srv.listen(port, '127.0.0.1');
    await once(srv, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((r) => srv.close(r));
  }
}

/** A port whose cluster-bus companion (port + 10000) is free as well. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if (taken.has(port) || taken.has(port + 10_000)) continue;
    if ((await bindable(port)) && (await bindable(port + 10_000))) return port;
  }
  throw new Error('no free port pair for a cluster node');
}

export async function startOwnCluster(size = 3): Promise<OwnCluster> {
  const children: ChildProcess[] = [];
  const dirs: string[] = [];
  const taken = new Set<number>();
  const stop = async () => {
    for (const c of children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill('SIGKILL');
        await once(c, 'exit');
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    for (let i = 0; i < size; i++) {
      const port = await freeClusterPort(taken);
      taken.add(port);
      taken.add(port + 10_000);
      ports.push(port);
      const dir = mkdtempSync(join(tmpdir(), 'relay-cluster-'));
      dirs.push(dir);
      children.push(
        spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'),
          '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' }),
      );
    }
    for (const port of ports) {
      let up = false;
      for (let i = 0; i < 100 && !up; i++) {
        up = await redisAnswers({ port, host: '127.0.0.1' });
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      if (!up) throw new Error(`cluster node on ${port} did not come up`);
    }
    const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    const nodes = ports.map((port) => ({ host: '127.0.0.1', port }));
    // Until every node agrees that all 16384 slots are served, a client may be told CLUSTERDOWN.
    for (let i = 0; ; i++) {
      const states = await Promise.all(ports.map(async (port) => {
        const r = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
        r.on('error', () => undefined);
        try {
          return String(await r.cluster('INFO')).includes('cluster_state:ok');
        } finally {
          r.disconnect();
        }
      }));
      if (states.every(Boolean)) break;
      if (i > 200) throw new Error('the cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 100));
    }
    return { nodes, env: nodes.map((n) => `${n.host}:${n.port}`).join(','), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A plain cluster client for assertions. */
export function clusterClient(c: OwnCluster): Cluster {
  return new Cluster(c.nodes, { redisOptions: { maxRetriesPerRequest: 3 } });
}
