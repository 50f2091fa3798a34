/**
 * Every error code the API answers with, in one list. Domain code (services, repositories)
 * throws a `DomainError` with one of these; only the HTTP layer (src/api/errors.ts) knows which
 * status and headers each one gets.
 */
export const ERROR_CODES = [
  'validation_failed',
  'invalid_json',
  'bad_request',
  'invalid_credentials',
  'invalid_receipt',
  'unknown_delivery',
  'unauthenticated',
  'forbidden',
  'not_found',
  'conflict',
  'invalid_state',
  'idempotency_conflict',
  'idempotency_in_progress',
  'credential_unreadable',
  'payload_too_large',
  'rate_limited',
  'unsupported_media_type',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A refusal the caller can act on: a code from {@link ERROR_CODES}, a message and optional details. */
export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}
