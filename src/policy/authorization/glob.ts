/**
 * Glob patterns for tool names, prompt names and resource URIs: `*` matches any run of
 * characters (slashes included: a URI is one string here), `?` one character; everything else
 * is literal. Compiled once per rule set into one RegExp.
 */
export function compileGlobs(patterns: readonly string[]): RegExp | undefined {
  if (patterns.length === 0) return undefined;
  const parts = patterns.map((p) =>
    p
      .split('')
      .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\/-]/g, '\\$&')))
      .join(''),
  );
  return new RegExp(`^(?:${parts.join('|')})$`, 's');
}
