import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A throw-away test CA and one server certificate that every mock provider serves. The SANs
 * cover the real provider hosts too, because clients keep the real host name for SNI and the
 * identity check even when their connection is pointed at 127.0.0.1.
 */
export interface TestPki {
  dir: string;
  caPem: string;
  caPath: string;
  certPem: string;
  keyPem: string;
}

const HOSTS = [
  'localhost', 'fcm.googleapis.com', 'oauth2.googleapis.com', 'api.push.apple.com', 'api.sandbox.push.apple.com',
  'push-api.cloud.huawei.com', 'oauth-login.cloud.huawei.com', 'api.xmpush.xiaomi.com', 'api.push.oppomobile.com',
  'api-push.vivo.com.cn', 'push-api.cloud.honor.com', 'iam.developer.honor.com', 'server-api-push.meizu.com',
];

let cached: TestPki | undefined;

export function testPki(): TestPki {
  if (cached) return cached;
  const dir = join(tmpdir(), `relay-test-pki-${process.getuid?.() ?? 0}`);
  const caPath = join(dir, 'ca.crt');
  if (!existsSync(join(dir, 'done'))) {
    mkdirSync(dir, { recursive: true });
    const ossl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=Relay Test CA');
    ossl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost');
    const san = [...HOSTS.map((h) => `DNS:${h}`), 'IP:127.0.0.1', 'IP:::1'].join(',');
    writeFileSync(join(dir, 'ext.cnf'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
    ossl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '3650', '-extfile', 'ext.cnf');
    writeFileSync(join(dir, 'done'), '');
  }
  cached = {
    dir,
    caPath,
    caPem: readFileSync(caPath, 'utf8'),
    certPem: readFileSync(join(dir, 'server.crt'), 'utf8'),
    keyPem: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
  return cached;
}
