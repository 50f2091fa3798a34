import type { Response } from 'express';

/**
 * Answers with a JSON body straight through node:http, for the hot routes (`POST /v1/push`,
 * `PUT /v1/devices/:id`). Express's res.json() → res.send() also reads its JSON settings, sets
 * the charset, hashes the body for an ETag and checks request freshness on every answer
 * (https://github.com/expressjs/express/blob/master/lib/response.js): a sha1 per push, and no use
 * on a POST or PUT, which no cache revalidates. Headers already set (rate limits, replays) stay.
 */
export function sendJson(res: Response, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
