import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { Router } from 'express';

/** dashboard/dist at the package root, built by `npm install` (dashboard/build.mjs). */
function distDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'dashboard'))) {
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return join(dir, 'dashboard', 'dist');
}

// Everything the page loads comes from Relay itself (private networks, no CDN).
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/**
 * The web dashboard (README: Dashboard): static files only; the page talks to the same /v1 API with the key
 * the user typed. Asset names carry a content hash, so they are cached for good and index.html
 * never is; the build writes brotli and gzip copies, served to browsers that accept them.
 */
export function dashboardRouter(): Router {
  const dir = distDir();
  const r = Router();
  r.use('/dashboard', (req, res, next) => {
    res.set({ 'Content-Security-Policy': CSP, 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff' });
    if (!existsSync(join(dir, 'index.html'))) {
      res.status(503).type('text').send('The dashboard is not built: run `npm install` (or `node dashboard/build.mjs`).');
      return;
    }
    if (req.path.startsWith('/assets/')) {
      const enc = req.acceptsEncodings('br', 'gzip');
      const ext = enc === 'br' ? '.br' : enc === 'gzip' ? '.gz' : '';
      if (ext && existsSync(join(dir, req.path + ext))) {
        res.set({ 'Content-Encoding': enc as string, Vary: 'Accept-Encoding' });
        res.type(req.path.slice(req.path.lastIndexOf('.')));
        req.url = req.path + ext;
      }
    }
    next();
  });
  r.use(
    '/dashboard',
    express.static(dir, {
      index: 'index.html',
      setHeaders(res, path) {
        res.set('Cache-Control', path.endsWith('.html') ? 'no-cache' : 'public, max-age=31536000, immutable');
      },
    }),
  );
  return r;
}
