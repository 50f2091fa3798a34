import { pino, type Logger } from 'pino';

/** Paths that may carry secrets; pino replaces them before a line is written. */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  '*.password',
  '*.token',
  '*.key',
  '*.secret',
  '*.privateKey',
  '*.private_key',
  '*.clientSecret',
  '*.appSecret',
  '*.masterSecret',
  '*.vapidPrivateKey',
];

export function createLogger(level: string, name = 'relay'): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } });
}
