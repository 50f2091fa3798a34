import { z } from 'zod';
import { ROUTES, type RouteDoc } from './define.js';

const errorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.unknown().describe('More about the error (the fields that failed validation), or null') }),
});

function jsonSchema(schema: z.ZodType, io: 'input' | 'output') {
  const s = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

function parameters(doc: RouteDoc) {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', doc.params], ['query', doc.query]] as const) {
    if (!schema) continue;
    const js = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, s] of Object.entries(js.properties ?? {})) {
      out.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
    }
  }
  return out;
}

/** OpenAPI 3.1 from the same zod schemas that validate requests: the two cannot drift apart. */
export function openapiDocument(serverUrl?: string) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const doc of ROUTES) {
    const path = doc.path.replace(/:(\w+)/g, '{$1}');
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(doc.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema ? { content: { 'application/json': { schema: jsonSchema(r.schema, 'output') } } } : {}),
      };
    }
    responses.default = { description: 'Error', content: { 'application/json': { schema: jsonSchema(errorSchema, 'output') } } };
    (paths[path] ??= {})[doc.method] = {
      summary: doc.summary,
      tags: [doc.tag],
      ...(doc.auth === 'none' ? { security: [] } : { description: `Authorization: ${doc.auth === 'operator' ? 'the operator token' : doc.auth === 'any' ? 'any API key or the operator token' : doc.auth === 'device' ? 'the device password' : `an API key with the '${doc.auth}' scope (or 'admin')`}.` }),
      parameters: parameters(doc),
      ...(doc.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(doc.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Relay',
      version: '1',
      description: 'One REST API for APNs, FCM, vendor channels, Web Push and Relay\'s own MQTT channel.',
    },
    ...(serverUrl ? { servers: [{ url: serverUrl }] } : {}),
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    security: [{ bearer: [] }],
    paths,
  };
}
