/**
 * Memory trace for the benchmarks, loaded with `--import` (NODE_OPTIONS) into every Relay process
 * when MEM_TRACE_DIR is set: a JSON line every MEM_TRACE_MS (250 ms) per process with the split of
 * process.memoryUsage() (rss, heapUsed, heapTotal, external, arrayBuffers; MB) and V8's
 * new/old space sizes, so a retained set (heapUsed after GC grows) can be told from GC headroom
 * (heapTotal and rss grow while heapUsed does not). Plain JS: loaded before tsx.
 * https://nodejs.org/api/process.html#processmemoryusage
 * https://nodejs.org/api/v8.html#v8getheapspacestatistics
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { setInterval } from 'node:timers';
import { getHeapSpaceStatistics } from 'node:v8';

const dir = process.env.MEM_TRACE_DIR;
if (dir) {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${process.pid}.jsonl`);
  const mb = (n) => Math.round((n / 1048576) * 10) / 10;
  const role = process.argv.includes('--supervised') ? 'worker' : 'primary';
  // Collections since the last sample: scavenges (minor) and mark-compacts (major), and their ms.
  const gc = { minor: 0, major: 0, gcMs: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
      if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
      gc.gcMs += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const sample = () => {
    const m = process.memoryUsage();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, mb(s.space_size)]));
    const line = {
      t: Date.now(),
      role,
      rss: mb(m.rss),
      heapTotal: mb(m.heapTotal),
      heapUsed: mb(m.heapUsed),
      external: mb(m.external),
      arrayBuffers: mb(m.arrayBuffers),
      newSpace: spaces.new_space,
      oldSpace: spaces.old_space,
      largeObject: spaces.large_object_space,
      ...gc,
      gcMs: Math.round(gc.gcMs),
    };
    Object.assign(gc, { minor: 0, major: 0, gcMs: 0 });
    appendFileSync(file, JSON.stringify(line) + '\n');
  };
  setInterval(sample, Number(process.env.MEM_TRACE_MS ?? 250)).unref();
}

/**
 * MEM_TRACE_PROMOTED=1: V8's sampling heap profiler keeping the samples a scavenge did not
 * collect (includeObjectsCollectedByMajorGC, not ...ByMinorGC): what was promoted to old space,
 * by allocation stack, live or since collected by a mark-compact. Written every 20 s to
 * <pid>.heapprofile. https://chromedevtools.github.io/devtools-protocol/v8/HeapProfiler/#method-startSampling
 */
if (dir && process.env.MEM_TRACE_PROMOTED === '1') {
  const { Session } = await import('node:inspector');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((ok, fail) => session.post(method, params, (err, res) => (err ? fail(err) : ok(res))));
  await post('HeapProfiler.enable');
  await post('HeapProfiler.startSampling', { samplingInterval: 32768, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false });
  setInterval(async () => {
    const { profile } = await post('HeapProfiler.getSamplingProfile');
    writeFileSync(join(dir, `${process.pid}.heapprofile`), JSON.stringify(profile));
  }, 20_000).unref();
}
