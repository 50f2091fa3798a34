import { readdirSync, readFileSync } from 'node:fs';

/** CPU and memory accounting from /proc, shared by the benchmarks. */

/** The process and its children (forked worker processes). */
export function family(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids];
  } catch {
    return [pid];
  }
}

/** CPU seconds a process has used (user + system), from /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds of every PostgreSQL process on the machine (the server is shared by the run). */
export function postgresCpuSeconds(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') total += cpuSeconds(Number(pid));
    } catch {
      /* gone */
    }
  }
  return total;
}

export interface Cpu {
  relay?: number;
  mock: number;
  postgres: number;
  bench: number;
}

export function cpuNow(mockPid: number, relayPid?: number): Cpu {
  return {
    ...(relayPid ? { relay: family(relayPid).reduce((sum, p) => sum + cpuSeconds(p), 0) } : {}),
    mock: cpuSeconds(mockPid),
    postgres: postgresCpuSeconds(),
    bench: cpuSeconds(process.pid),
  };
}

export function cpuDelta(a: Cpu, b: Cpu): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(b) as (keyof Cpu)[]) out[k] = Number(((b[k] ?? 0) - (a[k] ?? 0)).toFixed(2));
  return out;
}

export function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : NaN;
}
