import { X509Certificate, createPrivateKey } from 'node:crypto';
import { TLSSocket, createSecureContext } from 'node:tls';
import { z } from 'zod';
import { CredentialError } from '../types.js';

/** The APNs credential: a token-based .p8 key or a certificate, checked before it is stored. */

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
const APPLE_ID = /^[A-Z0-9]{10}$/;

/**
 * `PUT /v1/apps/:app/credentials/apns` body. Exactly one of two shapes:
 * - token auth: `{teamId, keyId, key (.p8 PEM), bundleId, production}`
 * - certificate auth: `{cert (PEM), key (PEM), passphrase?, bundleId, production}`, or the
 *   certificate and key as one PKCS#12 bundle (the `.p12` Keychain exports), base64:
 *   `{p12, passphrase?, bundleId, production}`
 *
 * One flat object (not a union) so a validation error names the field (`teamId`, `cert`, …)
 * and the JSON Schema stays readable. PEM text is required (never a file path: node-apn would
 * read any non-PEM string from the server's disk).
 */
export const apnsCredentialSchema = z
  .strictObject({
    teamId: z.string().regex(APPLE_ID, 'teamId must be the 10-character Apple Team ID').optional(),
    keyId: z.string().regex(APPLE_ID, 'keyId must be the 10-character key ID of the .p8 key').optional(),
    key: z.string().regex(PEM, 'key must be a PEM text (the .p8 file content, or the certificate key)').optional(),
    cert: z.string().regex(PEM, 'cert must be a PEM certificate').optional(),
    p12: z
      .string()
      .max(65_536)
      .regex(/^[A-Za-z0-9+/=\s]+$/, 'p12 must be the .p12 file in base64')
      .optional()
      .describe('The certificate and its key as one PKCS#12 (.p12) bundle, base64; instead of cert and key'),
    passphrase: z.string().max(1024).optional(),
    bundleId: z
      .string()
      .min(1)
      .max(155)
      .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'bundleId must be a bundle identifier such as com.example.app'),
    production: z.boolean(),
  })
  .superRefine((c, ctx) => {
    if (c.p12 !== undefined) {
      for (const f of ['teamId', 'keyId', 'cert', 'key'] as const) {
        if (c[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} does not go with p12 (the bundle holds the certificate and its key)` });
      }
    } else if (c.cert !== undefined) {
      if (c.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'key is required with cert (the certificate’s private key, PEM)' });
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} belongs to token auth; omit it with cert` });
      }
    } else {
      if (c.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'key is required: the .p8 key (token auth), or give cert and key, or p12' });
      if (c.passphrase !== undefined) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'passphrase belongs to certificate auth' });
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} is required for token auth (or give cert for certificate auth)` });
      }
    }
  });

export type ApnsCredential = z.infer<typeof apnsCredentialSchema>;

export function apnsAuthType(cred: ApnsCredential): 'token' | 'certificate' {
  return cred.cert !== undefined || cred.p12 !== undefined ? 'certificate' : 'token';
}

/**
 * The certificate inside a `.p12`, read the way the APNs connection will use the bundle (Node's
 * TLS, which node-apn is handed `pfx` and `passphrase` for): a wrong passphrase fails here, at the
 * credential PUT, rather than at the first send.
 */
function p12Certificate(cred: ApnsCredential): X509Certificate {
  const pfx = Buffer.from(cred.p12!, 'base64');
  let context;
  try {
    context = createSecureContext({ pfx, ...(cred.passphrase !== undefined ? { passphrase: cred.passphrase } : {}) });
  } catch (err) {
    const msg = (err as Error).message;
    // OpenSSL's PKCS#12 integrity check (the MAC keyed by the passphrase) fails on a wrong one.
    if (/mac verify|passphrase|password|decrypt/i.test(msg)) {
      throw new CredentialError('passphrase', `the p12 bundle could not be opened with this passphrase (${msg})`);
    }
    throw new CredentialError('p12', `p12 is not a readable PKCS#12 bundle with a certificate and its key: ${msg}`);
  }
  const raw = new TLSSocket(null as never, { secureContext: context }).getCertificate();
  if (!raw || !('raw' in raw) || !raw.raw) throw new CredentialError('p12', 'the p12 bundle holds no certificate');
  return new X509Certificate(raw.raw);
}

/** Parses the key material; throws `CredentialError` naming the bad field. */
export function checkApnsCredential(cred: ApnsCredential): void {
  if (apnsAuthType(cred) === 'token') {
    let key;
    try {
      key = createPrivateKey(cred.key!);
    } catch (err) {
      throw new CredentialError('key', `key is not a readable private key: ${(err as Error).message}`);
    }
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
      throw new CredentialError('key', `key must be an APNs .p8 key (EC P-256), got ${key.asymmetricKeyType ?? '?'} ${curve ?? ''}`.trim());
    }
    return;
  }
  let cert: X509Certificate;
  if (cred.p12 !== undefined) {
    // The TLS context only builds when the bundle's key belongs to its certificate.
    cert = p12Certificate(cred);
  } else {
    try {
      cert = new X509Certificate(cred.cert!);
    } catch (err) {
      throw new CredentialError('cert', `cert is not a readable X.509 certificate: ${(err as Error).message}`);
    }
    let key;
    try {
      key = createPrivateKey({ key: cred.key!, ...(cred.passphrase !== undefined ? { passphrase: cred.passphrase } : {}) });
    } catch (err) {
      const msg = (err as Error).message;
      if (/passphrase|decrypt/i.test(msg)) throw new CredentialError('passphrase', `the key could not be decrypted: ${msg}`);
      throw new CredentialError('key', `key is not a readable private key: ${msg}`);
    }
    if (!cert.checkPrivateKey(key)) throw new CredentialError('key', 'key does not belong to cert');
  }
  const notAfter = Date.parse(cert.validTo);
  if (Number.isFinite(notAfter) && notAfter < Date.now()) throw new CredentialError('cert', `cert expired on ${cert.validTo}`);
  // node-apn refuses a certificate without the Apple extension of the configured environment.
  const env = apnsCertEnvironments(cert);
  if (cred.production ? !env.production : !env.sandbox) {
    throw new CredentialError(
      'production',
      `cert is not an APNs ${cred.production ? 'production' : 'development (sandbox)'} certificate (Apple Push Services extension missing)`,
    );
  }
}

/** DER of the Apple Push Services OIDs 1.2.840.113635.100.6.3.1 (development) and .2 (production). */
const APPLE_PUSH_OID_PREFIX = Buffer.from('060a2a864886f763640603', 'hex');

/** Which APNs environments a certificate is valid for (its Apple extensions). */
export function apnsCertEnvironments(cert: X509Certificate): { sandbox: boolean; production: boolean } {
  const der = cert.raw;
  const has = (last: number) => der.includes(Buffer.concat([APPLE_PUSH_OID_PREFIX, Buffer.from([last])]));
  return { sandbox: has(1), production: has(2) };
}

/** Fields safe to show: never key material. */
export function describeApnsCredential(cred: ApnsCredential): Record<string, unknown> {
  const common = { bundleId: cred.bundleId, production: cred.production };
  if (apnsAuthType(cred) === 'token') return { auth: 'token', teamId: cred.teamId, keyId: cred.keyId, ...common };
  try {
    const cert = cred.p12 !== undefined ? p12Certificate(cred) : new X509Certificate(cred.cert!);
    const env = apnsCertEnvironments(cert);
    return {
      auth: 'certificate',
      ...(cred.p12 !== undefined ? { format: 'p12' } : {}),
      ...common,
      environments: [...(env.sandbox ? ['sandbox'] : []), ...(env.production ? ['production'] : [])],
      subject: cert.subject,
      issuer: cert.issuer,
      validFrom: new Date(cert.validFrom).toISOString(),
      validTo: new Date(cert.validTo).toISOString(),
      fingerprint256: cert.fingerprint256,
    };
  } catch {
    return { auth: 'certificate', ...common, certReadable: false };
  }
}

