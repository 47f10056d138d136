// Typed SQL templates: identifiers, literals and raw SQL stay apart, so a value can never become
// SQL by accident. `sql` accepts only Sql fragments as values; strings must go through id() or lit().

export class Sql {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export function id(name: string): Sql {
  if (name.includes('\0')) throw new Error('an identifier cannot contain a NUL byte');
  return new Sql('"' + name.replace(/"/g, '""') + '"');
}

export function lit(value: string | number | boolean | null): Sql {
  if (value === null) return new Sql('NULL');
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return new Sql(String(value));
  }
  if (typeof value === 'boolean') return new Sql(value ? 'true' : 'false');
  if (value.includes('\0')) throw new Error('a literal cannot contain a NUL byte');
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? new Sql(" E'" + body.replace(/\\/g, '\\\\') + "'") : new Sql("'" + body + "'");
}

export function raw(text: string): Sql {
  return new Sql(text);
}

export function join(parts: Sql[], separator = ', '): Sql {
  return new Sql(parts.map((p) => p.text).join(separator));
}

export function sql(strings: TemplateStringsArray, ...values: Sql[]): Sql {
  let text = strings[0] ?? '';
  values.forEach((v, i) => {
    if (!(v instanceof Sql)) throw new Error('sql`` takes only id(), lit(), raw() or sql`` values');
    text += v.text + (strings[i + 1] ?? '');
  });
  return new Sql(text);
}
