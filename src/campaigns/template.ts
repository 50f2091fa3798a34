/**
 * `{{variable}}` and `{{variable|fallback}}` placeholders (README: Campaigns), filled from a device's
 * `attributes`. The syntax is OneSignal's Liquid-like `{{ first_name | default: "there" }}` cut
 * down to what the spec names; no general template engine parses it as written, and the grammar
 * is one regular expression, so it is compiled here once per campaign into literal and
 * placeholder parts, and rendering a device is a join.
 */
export type Template = readonly (string | { name: string; fallback: string })[];

export class TemplateError extends Error {}

const VARIABLE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export function compileTemplate(text: string): Template {
  const parts: (string | { name: string; fallback: string })[] = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('{{', i);
    if (open < 0) break;
    const close = text.indexOf('}}', open + 2);
    if (close < 0) throw new TemplateError(`unclosed "{{" at character ${open + 1}`);
    if (open > i) parts.push(text.slice(i, open));
    const inner = text.slice(open + 2, close);
    const bar = inner.indexOf('|');
    const name = (bar < 0 ? inner : inner.slice(0, bar)).trim();
    if (!VARIABLE.test(name)) throw new TemplateError(`"{{${inner}}}" at character ${open + 1}: a variable is a letter or _ then letters, digits, _ . -`);
    if (inner.slice(bar < 0 ? 0 : bar).includes('{{')) throw new TemplateError(`nested "{{" at character ${open + 1}`);
    parts.push({ name, fallback: bar < 0 ? '' : inner.slice(bar + 1) });
    i = close + 2;
  }
  if (i < text.length) parts.push(text.slice(i));
  return parts;
}

export function isStatic(t: Template): boolean {
  return t.every((p) => typeof p === 'string');
}

export function render(t: Template, attributes: Readonly<Record<string, string>>): string {
  let out = '';
  for (const p of t) out += typeof p === 'string' ? p : attributes[p.name] || p.fallback;
  return out;
}
