import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { testPki } from '../tls.js';

/**
 * A generic SMS gateway for the sms channel's `http` driver, over HTTPS with the test PKI. It is
 * strict about what the test says the gateway expects: the auth header, the content type and the
 * body's required fields (JSON or form); a request that misses one is refused (401 / 415 / 400)
 * and recorded, so a test sees exactly what the driver rendered. Answers:
 * `200 {"code":0,"data":{"id":"gw-<n>"}}`, or per number from `fates` (status, code, Retry-After).
 */
export interface GatewayExpect {
  method: string;
  path: string;
  headers: Record<string, string>;
  contentType: 'json' | 'form' | 'none';
  required: string[];
}
export interface GatewayFate {
  status: number;
  code?: number | string;
  retryAfter?: string;
}
export interface GatewayRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  raw: string;
  fields: Record<string, unknown>;
  status: number;
}
export interface HttpGatewayMock {
  url: string;
  requests: GatewayRequest[];
  /** Numbers (the `to` field the test names) the gateway accepted, in order. */
  accepted: { to: string; fields: Record<string, unknown> }[];
  fates: Map<string, GatewayFate>;
  close(): Promise<void>;
}

export async function startHttpGatewayMock(expect: GatewayExpect, toField: string): Promise<HttpGatewayMock> {
  const pki = testPki();
  const requests: GatewayRequest[] = [];
  const accepted: HttpGatewayMock['accepted'] = [];
  const fates = new Map<string, GatewayFate>();
  let n = 0;
  const server = createServer({ cert: pki.certPem, key: pki.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const type = req.headers['content-type'] ?? '';
      let fields: Record<string, unknown> = {};
      const url = new URL(req.url ?? '/', 'https://gateway');
      if (expect.contentType === 'json' && type.startsWith('application/json')) {
        try {
          fields = JSON.parse(raw) as Record<string, unknown>;
        } catch {
          fields = {};
        }
      } else if (expect.contentType === 'form' && type.startsWith('application/x-www-form-urlencoded')) {
        fields = Object.fromEntries(new URLSearchParams(raw));
      } else if (expect.contentType === 'none') {
        fields = Object.fromEntries(url.searchParams);
      }
      const record: GatewayRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, raw, fields, status: 0 };
      requests.push(record);
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        record.status = status;
        res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
      };
      if (req.method !== expect.method || url.pathname !== expect.path) return answer(404, { code: 404, message: 'no such endpoint' });
      for (const [h, v] of Object.entries(expect.headers)) if (req.headers[h.toLowerCase()] !== v) return answer(401, { code: 401, message: `header ${h} missing or wrong` });
      const wantType = expect.contentType === 'json' ? 'application/json' : expect.contentType === 'form' ? 'application/x-www-form-urlencoded' : '';
      if (wantType && !type.startsWith(wantType)) return answer(415, { code: 415, message: `expected ${wantType}` });
      for (const f of expect.required) if (typeof fields[f] !== 'string' || fields[f] === '') return answer(400, { code: 400, message: `field ${f} is required` });
      const to = String(fields[toField]);
      const fate = fates.get(to);
      if (fate) return answer(fate.status, { code: fate.code ?? fate.status, message: 'refused by the gateway' }, fate.retryAfter ? { 'retry-after': fate.retryAfter } : {});
      accepted.push({ to, fields });
      answer(200, { code: 0, data: { id: `gw-${++n}` } });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    requests,
    accepted,
    fates,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
