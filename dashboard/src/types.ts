// Response shapes of the REST API (SPEC.md §5 and §7), as the dashboard reads them.
export const STATUSES = ['queued', 'sent', 'delivered', 'opened', 'failed', 'invalid', 'expired', 'cancelled'] as const;
export type Status = (typeof STATUSES)[number];
export type Counts = Partial<Record<Status, number>>;
export type Scope = 'push' | 'devices' | 'campaigns' | 'stats' | 'admin';

export type Me = { kind: 'operator' } | { kind: 'key'; appId: string; scopes: Scope[] };

export interface AppSummary {
  id: string;
  name: string;
}

export interface Rates {
  delivered: number | null;
  opened: number | null;
}

export const POINT_FIELDS = ['sent', 'delivered', 'opened', 'failed', 'invalid', 'expired'] as const;
export type PointField = (typeof POINT_FIELDS)[number];
export type Point = { t: string } & Partial<Record<PointField, number>>;

export interface Stats {
  interval: 'minute' | 'hour' | 'day';
  series: { key: Record<string, string | null>; points: Point[]; totals?: Partial<Record<PointField, number>>; rates?: Rates }[];
  totals: Partial<Record<PointField, number>>;
  rates: Rates;
}

/** `GET /v1/stats/errors`: the top reasons per channel, busiest channel first. */
export interface StatsErrors {
  channels: { channel: string; total: number; reasons: { code: string; status: string; count: number }[] }[];
}

export interface QueueDepth {
  name: string;
  waiting: number;
  active: number;
  delayed: number;
  prioritized: number;
  failed: number;
}

export interface Message {
  id: string;
  state: string;
  recipients: number;
  counts: Counts;
  byChannel: Record<string, Counts>;
  createdAt: string;
}

export interface Delivery {
  deviceId: string | null;
  channel: string | null;
  token: string | null;
  status: Status;
  attempts: number;
  error: { code: string; message: string } | null;
  sentAt: string | null;
  deliveredAt: string | null;
  updatedAt: string;
}

export interface Page<T> {
  items: T[];
  next: string | null;
}

export type CampaignState = 'draft' | 'scheduled' | 'running' | 'paused' | 'completed' | 'cancelled';

export interface Variant {
  name: string;
  dispatched?: number;
  counts?: Counts;
  rates?: Rates;
}

export interface Campaign {
  id: string;
  name: string;
  state: CampaignState;
  audienceSize: number | null;
  dispatched: number;
  skipped?: Record<string, number>;
  counts: Counts;
  rates: Rates;
  variants?: Variant[];
  runs?: { messageId: string; startedAt: string; counts?: Counts }[];
  nextRunAt?: string | null;
  createdAt: string;
  updatedAt?: string;
}

export interface Preview {
  total: number;
  byPlatform: Record<string, number>;
  byChannel: Record<string, number>;
}
