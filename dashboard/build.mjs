// Builds the web dashboard (dashboard/src → dashboard/dist) with esbuild: one hashed JS and one
// hashed CSS file, their brotli and gzip copies, and index.html naming them. Run by the root
// `prepare` script, so `npm install` leaves a dashboard the API serves at /dashboard without any
// network at run time. `--watch` rebuilds on change.
import { build, context } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'dist');

const options = {
  entryPoints: [join(here, 'src', 'main.tsx')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: 'app-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
};

function finish(result) {
  const files = Object.keys(result.metafile.outputs).map((p) => join(process.cwd(), p));
  const js = files.find((f) => f.endsWith('.js'));
  const css = files.find((f) => f.endsWith('.css'));
  const sizes = {};
  for (const f of files) {
    const body = readFileSync(f);
    const br = brotliCompressSync(body, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } });
    writeFileSync(`${f}.br`, br);
    writeFileSync(`${f}.gz`, gzipSync(body, { level: 9 }));
    sizes[basename(f)] = { bytes: body.length, brotli: br.length };
  }
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Relay dashboard</title>
<link rel="icon" href="data:,">
${css ? `<link rel="stylesheet" href="assets/${basename(css)}">` : ''}
<script type="module" src="assets/${basename(js)}"></script>
</head>
<body><div id="app"></div><noscript>The Relay dashboard needs JavaScript.</noscript></body>
</html>
`;
  writeFileSync(join(out, 'index.html'), html);
  return sizes;
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
if (process.argv.includes('--watch')) {
  const ctx = await context({ ...options, plugins: [{ name: 'html', setup: (b) => b.onEnd((r) => r.errors.length === 0 && finish(r)) }] });
  await ctx.watch();
  console.warn('dashboard: watching dashboard/src');
} else {
  try {
    const sizes = finish(await build(options));
    console.warn(`dashboard: built dashboard/dist ${JSON.stringify(sizes)}`);
  } catch {
    console.error('dashboard: build failed');
    process.exit(1);
  }
}
