import { Writable } from 'node:stream';

/** A pino destination that keeps every line, parsed (`lines`) and as written (`raw`). */
export function captureLines(): {
  stream: Writable;
  lines: () => Record<string, unknown>[];
  raw: () => string[];
} {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const raw = () => chunks.join('').split('\n').filter(Boolean);
  const lines = () => raw().map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines, raw };
}

/**
 * The keys a JSON text repeats within one object, at any depth, as `path.key`. `JSON.parse` keeps the
 * last of two equal keys without a word, so a repeated key (a child logger binding `module` again)
 * can only be seen in the text itself.
 */
export function duplicateKeys(text: string): string[] {
  const found: string[] = [];
  let at = 0;
  const skipSpace = () => {
    while (/\s/.test(text[at] ?? '')) at += 1;
  };
  const readString = (): string => {
    const start = at;
    at += 1;
    while (text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    at += 1;
    return JSON.parse(text.slice(start, at)) as string;
  };
  const readValue = (path: string): void => {
    skipSpace();
    const first = text[at];
    if (first === '{') {
      at += 1;
      const seen = new Set<string>();
      skipSpace();
      while (text[at] !== '}') {
        skipSpace();
        const key = readString();
        if (seen.has(key)) found.push(`${path}${key}`);
        seen.add(key);
        skipSpace();
        at += 1; // the colon
        readValue(`${path}${key}.`);
        skipSpace();
        if (text[at] === ',') at += 1;
        skipSpace();
      }
      at += 1;
    } else if (first === '[') {
      at += 1;
      skipSpace();
      while (text[at] !== ']') {
        readValue(path);
        skipSpace();
        if (text[at] === ',') at += 1;
        skipSpace();
      }
      at += 1;
    } else if (first === '"') {
      readString();
    } else {
      while (at < text.length && !/[,}\]\s]/.test(text[at]!)) at += 1;
    }
  };
  readValue('');
  return found;
}
