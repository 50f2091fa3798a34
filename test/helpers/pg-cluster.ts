import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis-server.js';

/**
 * A PostgreSQL cluster of the test's own (initdb into a temp dir, trust auth, an ephemeral port),
 * so a test can restart the server without touching the shared one. PostgreSQL refuses to run as
 * root: when the test runs as root, the cluster runs as the `postgres` user.
 */
export interface OwnPostgres {
  port: number;
  url: string;
  /** Stops the server the way a crash does (immediate: no checkpoint), then starts it again. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
  /** The postmaster's pid (its children are the server's backends and background workers). */
  pid(): number | undefined;
}

function bin(name: string): string {
  const root = '/usr/lib/postgresql';
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no PostgreSQL under ${root}`);
  return join(root, versions[0]!, 'bin', name);
}

/**
 * `settings` replace the defaults' `name=value` pairs (a benchmark measuring WAL wants
 * full_page_writes on, as production runs it) and add others (shared_preload_libraries).
 */
export async function startOwnPostgres(opts: { settings?: Record<string, string> } = {}): Promise<OwnPostgres> {
  const asRoot = process.getuid?.() === 0;
  const wrap = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  const dir = mkdtempSync(join(tmpdir(), 'relay-pg-'));
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const init = spawnSync(...wrap(bin('initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']), { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const up = async () => {
    const settings: Record<string, string> = { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '200', ...opts.settings };
    const [cmd, args] = wrap(bin('postgres'), [
      '-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1',
      ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ]);
    child = spawn(cmd, args, { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      if (spawnSync(bin('pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']).status === 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`PostgreSQL did not come up on ${port}`);
  };
  const down = async (signal: NodeJS.Signals) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    // runuser passes the signal on to postgres; SIGQUIT is PostgreSQL's immediate shutdown.
    const pid = spawnSync('head', ['-1', join(data, 'postmaster.pid')], { encoding: 'utf8' }).stdout.trim();
    if (pid) process.kill(Number(pid), signal);
    else child.kill(signal);
    await once(child, 'exit');
  };
  await up();
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restart(downMs = 0) {
      await down('SIGQUIT');
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await up();
    },
    pid() {
      const text = spawnSync('head', ['-1', join(data, 'postmaster.pid')], { encoding: 'utf8' }).stdout.trim();
      return text ? Number(text) : undefined;
    },
    async stop() {
      await down('SIGINT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
