/**
 * Writes a new `params._meta` into a request's original JSON text without re-serialising the
 * rest of it: the trace context is a few dozen bytes, the arguments may be megabytes. The text
 * has already been parsed (JSON.parse succeeded), so the scanner only has to find structure,
 * not validate it. Where the text could mean something other than what a simple scan sees —
 * a key written with escapes (`"_m\u0065ta"`), a duplicated `params` or `_meta` (JSON.parse
 * keeps the last), params that are not an object — it returns undefined and the caller
 * re-serialises the message instead.
 */
export function spliceMeta(text: string, metaJson: string): string | undefined {
  const top = skipSpace(text, 0);
  if (text.charCodeAt(top) !== OPEN_BRACE) return undefined;
  const params = findMember(text, top, 'params');
  if (params === undefined) return undefined;
  if (params.valueStart < 0) {
    // No params at all: one is added before the request's closing brace.
    return `${text.slice(0, params.close)}${params.empty ? '' : ','}"params":{"_meta":${metaJson}}${text.slice(params.close)}`;
  }
  if (text.charCodeAt(params.valueStart) !== OPEN_BRACE) return undefined;
  const meta = findMember(text, params.valueStart, '_meta');
  if (meta === undefined) return undefined;
  if (meta.valueStart < 0) {
    const at = params.valueStart + 1;
    return `${text.slice(0, at)}"_meta":${metaJson}${meta.empty ? '' : ','}${text.slice(at)}`;
  }
  return `${text.slice(0, meta.valueStart)}${metaJson}${text.slice(meta.valueEnd)}`;
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

/**
 * Where member `key` of the object opening at `open` is: its value's range, or valueStart -1
 * when it has none (then `close` is the object's closing brace and `empty` says it has no
 * members). Undefined when the object cannot be read safely (escaped or duplicated keys).
 */
interface Member {
  valueStart: number;
  valueEnd: number;
  close: number;
  empty: boolean;
}

function findMember(text: string, open: number, key: string): Member | undefined {
  let valueStart = -1;
  let valueEnd = -1;
  let i = skipSpace(text, open + 1);
  if (text.charCodeAt(i) === CLOSE_BRACE) return { valueStart, valueEnd, close: i, empty: true };
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return undefined;
    const keyEnd = stringEnd(text, i);
    if (keyEnd < 0) return undefined;
    const name = text.slice(i + 1, keyEnd);
    if (name.indexOf('\\') >= 0) return undefined;
    i = skipSpace(text, keyEnd + 1);
    if (text.charCodeAt(i) !== 0x3a) return undefined; // ':'
    const start = skipSpace(text, i + 1);
    const end = skipValue(text, start);
    if (end < 0) return undefined;
    if (name === key) {
      if (valueStart >= 0) return undefined; // duplicated: which one counts is the parser's choice
      valueStart = start;
      valueEnd = end;
    }
    i = skipSpace(text, end);
    const c = text.charCodeAt(i);
    if (c === CLOSE_BRACE) return { valueStart, valueEnd, close: i, empty: false };
    if (c !== COMMA) return undefined;
    i = skipSpace(text, i + 1);
  }
}

/** Index just past the JSON value starting at `i`; -1 when the text ends first. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === QUOTE) {
    const end = stringEnd(text, i);
    return end < 0 ? -1 : end + 1;
  }
  if (c === OPEN_BRACE || c === OPEN_BRACKET) {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const d = text.charCodeAt(j);
      if (d === QUOTE) {
        j = stringEnd(text, j);
        if (j < 0) return -1;
      } else if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        if (--depth === 0) return j + 1;
      }
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  let j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d <= 0x20) break;
    j++;
  }
  return j;
}

/** Index of the quote closing the string that opens at `i`; -1 when there is none. */
function stringEnd(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return -1;
    let backslashes = 0;
    for (let k = q - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return q;
    j = q + 1;
  }
}

function skipSpace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}
