import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { BlockList, isIP } from 'node:net';
import { jsonOrUndefined, redactUrl, type VendorFetchResult } from '../shared/http.js';

/**
 * The generic SMS driver calls whatever URL an app's admin configured, from inside the operator's
 * network: without a guard that is server-side request forgery (an admin could aim it at the
 * cloud metadata service, Redis or an internal API, and read parts of the answer back through
 * the delivery's error code). So a gateway URL must be https to a public address, checked when
 * the connection is made (DNS answers included, so a name that resolves to 10.0.0.5 is refused
 * too), redirects are not followed, and only the host the operator trusts
 * (SMS_HTTP_TRUSTED_URL) may be plain http or private. OWASP's guidance:
 * https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html
 */

/** Addresses no public SMS gateway has (RFC 6890 special-purpose ranges and their IPv6 kin). */
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 127],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
  ['2001:db8::', 32],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !PRIVATE.check(address, 'ipv4');
  if (family !== 6) return false;
  // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is the IPv4 address.
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPublicAddress(mapped[1]!);
  return !PRIVATE.check(address, 'ipv6');
}

export class RefusedUrlError extends Error {
  override name = 'RefusedUrlError';
}

/** Whether the operator trusts this URL's host: same scheme and host name as SMS_HTTP_TRUSTED_URL, any port. */
export function trustedHost(url: URL, trusted: string | undefined): boolean {
  if (!trusted) return false;
  const t = new URL(trusted);
  return t.protocol === url.protocol && t.hostname === url.hostname;
}

/** The URL a send may use, or why not. */
export function checkGatewayUrl(raw: string, trusted: string | undefined): URL {
  const url = new URL(raw);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new RefusedUrlError(`${url.protocol} URLs are not allowed`);
  if (trustedHost(url, trusted)) return url;
  if (url.protocol !== 'https:') throw new RefusedUrlError('the gateway URL must be https (only the operator’s trusted host, SMS_HTTP_TRUSTED_URL, may be http)');
  const literal = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(literal) && !isPublicAddress(literal)) throw new RefusedUrlError(`${literal} is not a public address`);
  return url;
}

/** dns.lookup, refusing a name that resolves to any private address. */
function publicLookup(hostname: string, options: LookupOptions, cb: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return cb(err, '');
    const bad = addresses.find((a) => !isPublicAddress(a.address));
    if (bad) return cb(Object.assign(new RefusedUrlError(`${hostname} resolves to ${bad.address}, not a public address`), { code: 'ESSRF' }), '');
    if (options.all) return cb(null, addresses);
    cb(null, addresses[0]!.address, addresses[0]!.family);
  });
}

const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * One request to an SMS gateway, with the guard above; never follows a redirect (a 3xx is an
 * answer like any other). Answers in the shape of `vendorFetch`, so the driver classifies it the
 * same way.
 */
export function guardedFetch(
  raw: string,
  init: { method: string; headers: Record<string, string>; body?: string; timeoutMs?: number; trusted?: string },
): Promise<VendorFetchResult> {
  const timeoutMs = init.timeoutMs ?? 15_000;
  const fail = (code: string, message: string): VendorFetchResult => ({ ok: false, reason: { code, message, evidence: { url: redactUrl(raw) } } });
  let url: URL;
  try {
    url = checkGatewayUrl(raw, init.trusted);
  } catch (err) {
    return Promise.resolve(fail('url_refused', (err as Error).message));
  }
  const trusted = trustedHost(url, init.trusted);
  return new Promise((resolve) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(
      url,
      {
        method: init.method,
        headers: { ...init.headers, ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}) },
        ...(trusted ? {} : { lookup: publicLookup as never }),
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ ok: true, status: res.statusCode ?? 0, headers: toHeaders(res.headers), text, json: jsonOrUndefined(text) });
        });
        res.on('error', (err) => resolve(fail('network', err.message)));
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'timeout' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err instanceof RefusedUrlError ? fail('url_refused', err.message) : fail(err.code ?? 'network', err.message)));
    if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}

function toHeaders(h: IncomingHttpHeaders): Headers {
  const out = new Headers();
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.append(k, one);
  }
  return out;
}
