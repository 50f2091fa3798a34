import { pino, type DestinationStream, type Logger } from 'pino';

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

/** A logger to stdout, or to `destination` (tests capture every line to scan it for secrets). */
export function createLogger(level: string, name = 'relay', destination?: DestinationStream): Logger {
  const options = { name, level, redact: { paths: REDACT, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
