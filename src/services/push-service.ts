import { sha256, randomId } from '../core/secrets.js';
import { NOW_OR_NEVER_MS, fallbackAfterMs, type PushRequest } from '../core/push-request.js';
import type { Config } from '../config.js';
import type { DeliveriesRepo } from '../db/deliveries-repo.js';
import type { MessagesRepo } from '../db/messages-repo.js';
import { DomainError } from '../core/errors.js';
import type { RecallsRepo } from '../db/recalls-repo.js';
import { RECALL_JOB_OPTIONS, ROUTE_JOB_OPTIONS, SMS_FALLBACK_JOB_OPTIONS, recallJobId, type Queues } from '../queues.js';
import { smsFallbackJobId } from './sms-fallback.js';
import { isDirect, type DirectPush } from './direct-push.js';

export interface Accepted {
  id: string;
  recipients: number;
  /** True when an Idempotency-Key matched an earlier request. */
  replayed: boolean;
}

/**
 * Accepting a push: store it, count its audience, hand it to the router. Nothing is sent here. A
 * small direct push (a few devices or users, a raw token) is routed here instead (DirectPush).
 */
export class PushService {
  constructor(
    private readonly config: Config,
    private readonly messages: MessagesRepo,
    private readonly deliveries: DeliveriesRepo,
    private readonly queues: Queues,
    /** Self-channel recall (src/self/recall.ts); without it, sent self copies stay as they are. */
    private readonly recall?: (appId: string, messageId: string) => Promise<number>,
    /** The transactional path for small direct pushes; without it every push goes through the router. */
    private readonly direct?: DirectPush,
    /** Per-delivery recall state; without it a cancel only cancels and withdraws (counts only). */
    private readonly recalls?: RecallsRepo,
  ) {}

  async accept(appId: string, request: PushRequest, idempotencyKey?: string): Promise<Accepted> {
    const id = randomId('msg_', 12);
    let requestHash = '';
    if (idempotencyKey) {
      requestHash = sha256(JSON.stringify(request));
      const replay = await this.replay(appId, idempotencyKey, requestHash);
      if (replay) return replay;
      if (!(await this.messages.claimIdempotency(appId, idempotencyKey, id, requestHash))) {
        const raced = await this.replay(appId, idempotencyKey, requestHash);
        if (raced) return raced;
      }
    }
    try {
      const now = Date.now();
      const sendAt = request.options.sendAt ? new Date(request.options.sendAt) : null;
      const start = sendAt && sendAt.getTime() > now ? sendAt.getTime() : now;
      const ttl = request.options.ttl;
      const ttlMs = ttl === undefined ? this.config.DEFAULT_TTL : ttl === 0 ? NOW_OR_NEVER_MS : ttl * 1000;
      const scheduled = start > now + 1000;
      const fallback = request.options.fallback?.sms;
      if (fallback) {
        // Queued before the message is stored: a job whose message never got stored finds nothing
        // and ends, while a stored message can never miss its top-up.
        await this.queues.smsFallback.add('fallback', { appId, messageId: id }, { ...SMS_FALLBACK_JOB_OPTIONS, jobId: smsFallbackJobId(id), delay: start - now + fallbackAfterMs(fallback.after) });
      }
      if (this.direct && isDirect(request, scheduled)) {
        return { id, recipients: await this.direct.accept({ id, appId, request, expiresAt: new Date(start + ttlMs) }), replayed: false };
      }
      const recipients = await this.messages.insertCounting(
        { id, appId, request, state: scheduled ? 'scheduled' : 'queued', sendAt, expiresAt: new Date(start + ttlMs) },
        request.to,
      );
      await this.queues.routeAdder.add('route', { appId, messageId: id }, { ...ROUTE_JOB_OPTIONS, jobId: id, delay: Math.max(0, start - now) });
      return { id, recipients, replayed: false };
    } catch (err) {
      if (idempotencyKey) await this.messages.deleteIdempotency(appId, idempotencyKey).catch(() => undefined);
      throw err;
    }
  }

  private async replay(appId: string, key: string, requestHash: string): Promise<Accepted | null> {
    const prior = await this.messages.findIdempotent(appId, key);
    if (!prior) return null;
    if (prior.requestHash !== requestHash) {
      throw new DomainError('idempotency_conflict', 'this Idempotency-Key was already used with a different request body');
    }
    const msg = await this.messages.get(appId, prior.messageId);
    // The first request may still be between claiming the key and storing its message.
    if (!msg) throw new DomainError('idempotency_in_progress', 'a request with this Idempotency-Key is still being accepted; retry shortly');
    return { id: msg.id, recipients: msg.recipients, replayed: true };
  }

  /**
   * Recall: cancels what has not been sent and, on the self channel, withdraws at once what no
   * device acked yet (Relay still holds it); then queues the recall job (workers/recall.ts) that
   * gives every delivery its recall state, withdrawing or replacing what providers accepted where
   * the channel allows it. Idempotent: a repeated call queues nothing new.
   */
  async cancel(appId: string, id: string): Promise<{ id: string; state: 'cancelled' | 'done'; cancelled: number; withdrawn: number }> {
    const msg = await this.messages.get(appId, id);
    if (!msg) throw new DomainError('not_found', 'message not found');
    // Recorded first: a crash before the job is queued leaves a running recall the sweeper queues.
    if (this.recalls) await this.recalls.start(appId, id);
    const result = await this.cancelNow(appId, id, msg.state);
    // A recalled push gets no SMS top-up (the worker checks too, should this removal miss it).
    await this.queues.smsFallback.remove(smsFallbackJobId(id));
    // After the cancel, so the job finds the withdrawn self copies already pending.
    if (this.recalls) await this.queues.recall.add('recall', { appId, messageId: id }, { ...RECALL_JOB_OPTIONS, jobId: recallJobId(id) });
    return result;
  }

  private async cancelNow(appId: string, id: string, state: string): Promise<{ id: string; state: 'cancelled' | 'done'; cancelled: number; withdrawn: number }> {
    if (state === 'cancelled') return { id, state: 'cancelled', cancelled: 0, withdrawn: 0 };
    // Before routing ends the message is marked first, so the router stops expanding it. A routed
    // one is marked only when something was still pending or withdrawn: a message whose every
    // delivery had already ended stays done.
    await this.messages.transition(id, ['scheduled', 'queued', 'routing'], 'cancelled', { cancelled: true });
    const cancelled = await this.deliveries.cancelPending(id);
    const withdrawn = this.recall ? await this.recall(appId, id) : 0;
    if (cancelled + withdrawn > 0) await this.messages.transition(id, ['routed'], 'cancelled', { cancelled: true });
    const now = (await this.messages.get(appId, id))?.state === 'cancelled' ? 'cancelled' : 'done';
    return { id, state: now, cancelled, withdrawn };
  }
}
