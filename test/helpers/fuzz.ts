/**
 * fast-check arbitraries for fuzzing the API from its own route table: values shaped by each
 * route's zod schema (through the JSON Schema that /openapi.json publishes), and mutations of a
 * valid example request.
 */
import fc from 'fast-check';
import { z } from 'zod';

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  default?: unknown;
};

/** How many runs each property gets: small in the suite, FUZZ_RUNS for a long run (npm run fuzz). */
export const fuzzRuns = (inSuite: number) => Number(process.env.FUZZ_RUNS ?? inSuite);

export function toJsonSchema(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

/** Any JSON value, including the awkward ones: deep nesting, huge numbers, unicode, prototype keys. */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom('', ' ', '\u0000', '\uffff', '\ud800', '💥'.repeat(50), 'x'.repeat(5000), '__proto__', 'constructor', 'NaN', '-1', '1e309', '0x10', '[]', '{}', 'null'),
  fc.constantFrom(0, -1, -0, 1.5, 2 ** 53, -(2 ** 63), 1e308, Number.MAX_SAFE_INTEGER + 2, true, false, null),
  fc.constantFrom({ __proto__: { polluted: true } }, JSON.parse('{"__proto__":{"polluted":true}}'), { constructor: { prototype: { x: 1 } } }),
  // Deeper nesting goes in raw bodies (fuzz-api's hostile inputs): fast-check prints failing values recursively.
  fc.integer({ min: 1, max: 200 }).map((n) => JSON.parse('['.repeat(n) + ']'.repeat(n)) as unknown),
);

/** Values that follow a JSON Schema (mostly valid, so requests get past validation into handlers). */
export function fromSchema(s: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (!s || depth > 5) return fc.jsonValue({ maxDepth: 2 });
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const union = s.anyOf ?? s.oneOf;
  if (union?.length) return fc.oneof(...union.map((b) => fromSchema(b, depth + 1)));
  if (s.allOf?.length) return fromSchema(s.allOf[0], depth + 1);
  const type = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (type.length > 1) return fc.oneof(...type.map((t) => fromSchema({ ...s, type: t }, depth)));
  switch (type[0]) {
    case 'object': {
      const props = Object.entries(s.properties ?? {});
      if (props.length === 0) return fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
      const required = new Set(s.required ?? []);
      return fc.record(Object.fromEntries(props.map(([k, v]) => [k, fromSchema(v, depth + 1)])), {
        requiredKeys: props.map(([k]) => k).filter((k) => required.has(k)),
      });
    }
    case 'array':
      return fc.array(fromSchema(s.items ?? s.prefixItems?.[0], depth + 1), {
        minLength: Math.min(s.minItems ?? 0, 3),
        maxLength: Math.max(Math.min(s.maxItems ?? 4, 4), Math.min(s.minItems ?? 0, 3)),
      });
    case 'string':
      if (s.format === 'date-time') return fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }).map((d) => d.toISOString());
      if (s.pattern) {
        try {
          return fc.stringMatching(new RegExp(s.pattern)).filter((x) => x.length <= (s.maxLength ?? 512));
        } catch {
          /* a pattern fast-check cannot generate from: fall through */
        }
      }
      return fc.string({ minLength: Math.min(s.minLength ?? 0, 20), maxLength: Math.min(s.maxLength ?? 40, 40) });
    case 'integer':
      return fc.integer({ min: Math.max(s.minimum ?? -1e6, Number.MIN_SAFE_INTEGER), max: Math.min(s.maximum ?? 1e6, Number.MAX_SAFE_INTEGER) });
    case 'number':
      return fc.double({ min: s.minimum ?? -1e9, max: s.maximum ?? 1e9, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

type Mutation = { op: 'delete' | 'set' | 'wrap' | 'unknown-key'; path: number; value: unknown };

/** Every path (key list) inside a JSON value, the root included. */
function paths(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) out.push(...paths(c, [...at, Array.isArray(v) ? Number(k) : k]));
  return out;
}

function apply(value: unknown, m: Mutation): unknown {
  const copy = structuredClone(value);
  const all = paths(copy);
  const path = all[m.path % all.length]!;
  if (path.length === 0) return m.op === 'wrap' ? [copy] : m.op === 'delete' ? undefined : m.op === 'unknown-key' && copy && typeof copy === 'object' ? { ...copy, zzUnknown: m.value } : m.value;
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], copy);
  const key = path[path.length - 1]!;
  if (m.op === 'delete') {
    if (Array.isArray(parent)) parent.splice(Number(key), 1);
    else delete parent[key];
  } else if (m.op === 'wrap') parent[key] = [parent[key]];
  else if (m.op === 'unknown-key') parent[key] = parent[key] && typeof parent[key] === 'object' && !Array.isArray(parent[key]) ? { ...parent[key], zzUnknown: m.value } : m.value;
  else parent[key] = m.value;
  return copy;
}

/** A valid value with one to three mutations: a key removed, replaced by anything, wrapped in an array, an unknown key added. */
export function mutationsOf(valid: unknown): fc.Arbitrary<unknown> {
  const mutation = fc.record({ op: fc.constantFrom('delete', 'set', 'wrap', 'unknown-key'), path: fc.nat(), value: nastyValue }) as fc.Arbitrary<Mutation>;
  return fc.array(mutation, { minLength: 1, maxLength: 3 }).map((ms) => ms.reduce<unknown>((v, m) => apply(v, m), valid));
}

/** Printable header values (fetch refuses control characters on the client side). */
export const headerValue = fc.oneof(
  fc.string({ unit: fc.constantFrom(...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i))), maxLength: 300 }),
  fc.constantFrom('', 'Bearer', 'Bearer ', 'Bearer  x y', 'Device :', 'Device a:b:c', 'Basic Zm9vOmJhcg==', 'Bearer rk_x.y', 'a'.repeat(8000)),
);
