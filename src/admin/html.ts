/** @module admin/html: HTML templating with escaping by default. `html\`…\`` escapes every interpolated value
 *  unless it is itself the result of `html` (a SafeHtml); arrays are joined. There is no other way to build
 *  markup in admin/, so a value from the store or a request cannot become markup by accident. */

export class SafeHtml {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

type Value = SafeHtml | string | number | boolean | null | undefined | readonly Value[];

function render(v: Value): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof SafeHtml) return v.text;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Value[]): SafeHtml {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new SafeHtml(out);
}

/** Markup we built ourselves outside a template (the SVG chart's numbers). Never pass request data here. */
export function trusted(text: string): SafeHtml {
  return new SafeHtml(text);
}
