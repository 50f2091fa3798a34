// A local ESLint rule: no run-time import cycle between the repository's own files.
// eslint-plugin-import's `import/no-cycle` does this too, but it is not installed and a dependency
// for ~60 lines is not worth it. Type-only imports (`import type`, `export type`) are erased by
// TypeScript, so they never form a cycle at run time and are skipped.
import fs from 'node:fs';
import path from 'node:path';

const IMPORT = /^\s*(?:import|export)\s+([^'";]*?)\s*from\s*['"](\.{1,2}\/[^'"]+)['"]|^\s*import\s*['"](\.{1,2}\/[^'"]+)['"]/gm;
const depsCache = new Map();

function resolve(from, spec) {
  const base = path.resolve(path.dirname(from), spec);
  for (const candidate of [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (candidate.endsWith('.ts') && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

function deps(file) {
  let out = depsCache.get(file);
  if (out) return out;
  out = [];
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    /* a file that vanished has no imports */
  }
  for (const m of text.matchAll(IMPORT)) {
    const clause = m[1];
    if (clause !== undefined && /^type\b/.test(clause)) continue;
    const target = resolve(file, m[2] ?? m[3]);
    if (target && !target.includes(`${path.sep}node_modules${path.sep}`)) out.push(target);
  }
  depsCache.set(file, out);
  return out;
}

/** A path of imports from `start`'s imports back to `start`, or undefined. */
function cycleFrom(start) {
  const seen = new Set();
  const stack = deps(start).map((d) => [d, [start, d]]);
  while (stack.length) {
    const [file, trail] = stack.pop();
    if (file === start) return trail;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const d of deps(file)) stack.push([d, [...trail, d]]);
  }
  return undefined;
}

export default {
  rules: {
    'no-cycle': {
      meta: { type: 'problem', docs: { description: 'no run-time import cycle between files' }, schema: [] },
      create(context) {
        return {
          Program(node) {
            const file = context.filename;
            if (!file.endsWith('.ts')) return;
            depsCache.delete(file);
            const trail = cycleFrom(file);
            if (!trail) return;
            const cwd = process.cwd();
            context.report({ node, message: `import cycle: ${trail.map((f) => path.relative(cwd, f)).join(' → ')}` });
          },
        };
      },
    },
  },
};
