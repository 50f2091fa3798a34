import type { Request, Response, Router } from 'express';
import type { z } from 'zod';
import { parse } from './validate.js';

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'delete';
  /** Express-style path: `/v1/devices/:id`. */
  path: string;
  summary: string;
  tag: string;
  /** Who may call it, for the docs: `operator`, `admin`, or an API key scope. */
  auth: 'none' | 'any' | 'operator' | 'admin' | 'push' | 'devices' | 'campaigns' | 'stats' | 'device';
  body?: z.ZodType;
  query?: z.ZodType;
  params?: z.ZodType;
  responses: Record<number, { description: string; schema?: z.ZodType }>;
}

export interface Parsed<B, Q, P> {
  body: B;
  query: Q;
  params: P;
}

type Infer<S> = S extends z.ZodType ? z.infer<S> : undefined;

/** The one list every route is registered in: it drives both validation and `/openapi.json`. */
export const ROUTES: RouteDoc[] = [];

/**
 * Registers a route on an express router and in the OpenAPI registry. The handler receives the
 * validated body, query and params; validation errors become 400s naming the field path.
 */
export function route<D extends RouteDoc>(
  router: Router,
  doc: D,
  handler: (req: Request, res: Response, input: Parsed<Infer<D['body']>, Infer<D['query']>, Infer<D['params']>>) => Promise<unknown> | unknown,
): void {
  if (!ROUTES.some((r) => r.method === doc.method && r.path === doc.path)) ROUTES.push(doc);
  router[doc.method](doc.path, async (req, res) => {
    const input = {
      body: doc.body ? parse(doc.body, req.body ?? {}, 'body') : undefined,
      query: doc.query ? parse(doc.query, req.query, 'query') : undefined,
      params: doc.params ? parse(doc.params, req.params, 'params') : undefined,
    } as Parsed<Infer<D['body']>, Infer<D['query']>, Infer<D['params']>>;
    await handler(req, res, input);
  });
}
