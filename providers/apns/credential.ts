import { X509Certificate, createPrivateKey } from 'node:crypto';
import { z } from 'zod';
import { CredentialError } from '../types.js';

/** The APNs credential: a token-based .p8 key or a certificate, checked before it is stored. */

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;
const APPLE_ID = /^[A-Z0-9]{10}$/;

/**
 * `PUT /v1/apps/:app/credentials/apns` body. Exactly one of two shapes:
 * - token auth: `{teamId, keyId, key (.p8 PEM), bundleId, production}`
 * - certificate auth: `{cert (PEM), key (PEM), passphrase?, bundleId, production}`
 *
 * One flat object (not a union) so a validation error names the field (`teamId`, `cert`, …)
 * and the JSON Schema stays readable. PEM text is required (never a file path: node-apn would
 * read any non-PEM string from the server's disk).
 */
export const apnsCredentialSchema = z
  .strictObject({
    teamId: z.string().regex(APPLE_ID, 'teamId must be the 10-character Apple Team ID').optional(),
    keyId: z.string().regex(APPLE_ID, 'keyId must be the 10-character key ID of the .p8 key').optional(),
    key: z.string().regex(PEM, 'key must be a PEM text (the .p8 file content, or the certificate key)'),
    cert: z.string().regex(PEM, 'cert must be a PEM certificate').optional(),
    passphrase: z.string().optional(),
    bundleId: z
      .string()
      .min(1)
      .max(155)
      .regex(/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/, 'bundleId must be a bundle identifier such as com.example.app'),
    production: z.boolean(),
  })
  .superRefine((c, ctx) => {
    if (c.cert !== undefined) {
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] !== undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} belongs to token auth; omit it with cert` });
      }
    } else {
      if (c.passphrase !== undefined) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'passphrase belongs to certificate auth' });
      for (const f of ['teamId', 'keyId'] as const) {
        if (c[f] === undefined) ctx.addIssue({ code: 'custom', path: [f], message: `${f} is required for token auth (or give cert for certificate auth)` });
      }
    }
  });

export type ApnsCredential = z.infer<typeof apnsCredentialSchema>;

export function apnsAuthType(cred: ApnsCredential): 'token' | 'certificate' {
  return cred.cert !== undefined ? 'certificate' : 'token';
}

/** Parses the key material; throws `CredentialError` naming the bad field. */
export function checkApnsCredential(cred: ApnsCredential): void {
  if (apnsAuthType(cred) === 'token') {
    let key;
    try {
      key = createPrivateKey(cred.key);
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
  try {
    cert = new X509Certificate(cred.cert!);
  } catch (err) {
    throw new CredentialError('cert', `cert is not a readable X.509 certificate: ${(err as Error).message}`);
  }
  let key;
  try {
    key = createPrivateKey({ key: cred.key, ...(cred.passphrase !== undefined ? { passphrase: cred.passphrase } : {}) });
  } catch (err) {
    const msg = (err as Error).message;
    if (/passphrase|decrypt/i.test(msg)) throw new CredentialError('passphrase', `the key could not be decrypted: ${msg}`);
    throw new CredentialError('key', `key is not a readable private key: ${msg}`);
  }
  if (!cert.checkPrivateKey(key)) throw new CredentialError('key', 'key does not belong to cert');
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
    const cert = new X509Certificate(cred.cert!);
    const env = apnsCertEnvironments(cert);
    return {
      auth: 'certificate',
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

