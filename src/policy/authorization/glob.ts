/**
 * Glob patterns for tool names, prompt names and resource URIs: `*` matches any run of
 * characters (slashes included: a URI is one string here), `?` one character; everything else
 * is literal. Matched without a RegExp: a backtracking regex of `^.*a.*b.*$` takes O(nᵏ) steps on
 * a long name the client chooses (a 3,000-character tool name against `*a*a*b*` blocked the event
 * loop for seconds); the two-pointer matcher below takes at most O(name × pattern).
 */
export class GlobSet {
  /** Patterns without wildcards: one Set lookup. */
  private readonly exact = new Set<string>();
  private readonly wild: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p.includes('*') || p.includes('?')) this.wild.push(p);
      else this.exact.add(p);
    }
  }

  test(name: string): boolean {
    if (this.exact.has(name)) return true;
    for (const p of this.wild) if (globMatch(p, name)) return true;
    return false;
  }
}

export function compileGlobs(patterns: readonly string[]): GlobSet | undefined {
  return patterns.length === 0 ? undefined : new GlobSet(patterns);
}

const STAR = 42; // '*'
const ANY = 63; // '?'

/**
 * Whether `name` matches `pattern` (UTF-16 code units, as `.` without the `u` flag). On a
 * mismatch after a `*`, the star takes one more character and matching resumes from there; an
 * earlier star never needs revisiting, because a later one can absorb whatever it would have.
 */
export function globMatch(pattern: string, name: string): boolean {
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    const c = p < pattern.length ? pattern.charCodeAt(p) : -1;
    if (c === STAR) {
      star = p++;
      resume = n;
    } else if (c !== -1 && (c === ANY || c === name.charCodeAt(n))) {
      p++;
      n++;
    } else if (star !== -1) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern.charCodeAt(p) === STAR) p++;
  return p === pattern.length;
}
