import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type NextFunction, type Request, type Response } from 'express';
import type { Queues } from '../queues.js';
import { safeEqual } from '../core/secrets.js';
import type { Authenticator } from './auth.js';
import { ApiError } from './errors.js';

export const ADMIN_QUEUES_PATH = '/admin/queues';

const CHALLENGE = { 'WWW-Authenticate': 'Basic realm="Relay operator", charset="UTF-8"' };

/**
 * Bull Board (https://github.com/felixmosh/bull-board) for the operator token only: it can retry,
 * promote and delete jobs of every app. A browser opens it with Basic auth (any user name, the
 * operator token as password: it prompts on the 401); scripts may send `Bearer <operator token>`.
 * An app's API key gets a 403, no or a wrong credential a 401.
 */
export function adminQueuesRouter(queues: Queues, auth: Authenticator, adminToken: string): Router {
  const server = new ExpressAdapter().setBasePath(ADMIN_QUEUES_PATH);
  createBullBoard({
    queues: queues.all().map((q) => new BullMQAdapter(q)),
    serverAdapter: server,
    options: { uiConfig: { boardTitle: 'Relay queues' } },
  });
  const r = Router();
  r.use(ADMIN_QUEUES_PATH, operatorOnly(auth, adminToken), (_req, res, next) => {
    // Bull Board's page links Google Fonts; this board is for private networks, so the browser is
    // told to fetch nothing but what Relay serves (the fonts fall back to the system's).
    res.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'");
    next();
  }, server.getRouter() as Router);
  return r;
}

function operatorOnly(auth: Authenticator, adminToken: string) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization') ?? '';
    const basic = /^Basic\s+(\S+)\s*$/i.exec(header);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const password = decoded.slice(decoded.indexOf(':') + 1);
      if (safeEqual(password, adminToken)) return next();
      // A valid app key typed into the prompt is still refused as a key, not as a typo.
      const asKey = await auth.resolve(`Bearer ${password}`).catch(() => null);
      if (asKey) throw forbidden();
      throw new ApiError('unauthenticated', 'wrong operator token', undefined, CHALLENGE);
    }
    if (!/^Bearer\s/i.test(header)) throw new ApiError('unauthenticated', 'the queue board needs the operator token (ADMIN_TOKEN)', undefined, CHALLENGE);
    const p = await auth.resolve(header);
    if (p.kind !== 'operator') throw forbidden();
    next();
  };
}

const forbidden = () => new ApiError('forbidden', 'only the operator token (ADMIN_TOKEN) may open the queue board');
