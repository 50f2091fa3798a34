import type { PushContent } from '../../providers/types.js';
import type { Config } from '../config.js';
import type { PushRequest } from './push-request.js';
import type { RetryPolicy } from './retry.js';

/** What every send of one message needs, built once from the stored request. */
export interface MessagePlan {
  content: PushContent;
  policy: RetryPolicy;
}

export function buildPlan(messageId: string, request: PushRequest, expiresAt: Date, config: Config): MessagePlan {
  const o = request.options;
  const content: PushContent = {
    messageId,
    ...(request.notification ? { notification: request.notification } : {}),
    ...(request.data ? { data: request.data } : {}),
    options: {
      ttl: o.ttl ?? Math.round(config.DEFAULT_TTL / 1000),
      priority: o.priority,
      ...(o.collapseKey ? { collapseKey: o.collapseKey } : {}),
      ...(o.pushType ? { pushType: o.pushType } : {}),
      ...(o.category ? { category: o.category } : {}),
    },
    expiresAt: expiresAt.getTime(),
    ...(request.overrides ? { overrides: request.overrides } : {}),
  };
  const backoff = o.retry?.backoff;
  const policy: RetryPolicy = {
    maxAttempts: o.retry?.maxAttempts ?? config.MAX_ATTEMPTS,
    type: backoff?.type ?? 'exponential',
    baseDelayMs: backoff?.delayMs ?? config.RETRY_BASE_DELAY,
    maxDelayMs: backoff?.maxDelayMs ?? config.RETRY_MAX_DELAY,
  };
  return { content, policy };
}
