/** A strict reader of the Prometheus text exposition format for the admin tests. */
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A strict reader of the text format (version 0.0.4): HELP/TYPE lines, then samples of declared families.
 *  Throws on anything else, so a malformed exposition fails the test. */
export function parsePrometheus(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleLine = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
  const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(?:,|$)/;
  assert.ok(text.endsWith('\n'), 'exposition ends with a newline');
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      assert.match(line, new RegExp(`^# HELP ${NAME} `), line);
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
      assert.ok(m, `bad TYPE line: ${line}`);
      assert.ok(!types.has(m[1]!), `family ${m[1]} declared twice`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    const m = sampleLine.exec(line);
    assert.ok(m, `bad sample line: ${line}`);
    const [, name, rawLabels = '', rawValue] = m;
    const family = [name!, name!.replace(/_(bucket|sum|count|total|created)$/, '')].find((n) => types.has(n));
    assert.ok(family, `sample ${name} has no TYPE`);
    const labels: Record<string, string> = {};
    let rest = rawLabels;
    while (rest.length) {
      const l = label.exec(rest);
      assert.ok(l, `bad labels in: ${line}`);
      labels[l[1]!] = l[2]!;
      rest = rest.slice(l[0].length);
    }
    // Prometheus reads values with Go's ParseFloat: NaN and Inf in any case (prom-client writes 'Nan')
    const special = /^(nan|[+-]?inf)$/i.test(rawValue!);
    const value = special
      ? Number(rawValue!.toLowerCase().replace('inf', 'Infinity').replace('nan', 'NaN'))
      : Number(rawValue);
    assert.ok(special || (rawValue !== '' && !Number.isNaN(value)), `bad value in: ${line}`);
    samples.push({ name: name!, labels, value });
  }
  return { types, samples };
}
