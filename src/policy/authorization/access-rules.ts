import { compileGlobs, GlobSet } from './glob';

/** Allow and deny patterns for one kind of thing (tools, resources or prompts). */
export interface AccessPatterns {
  allow?: readonly string[];
  deny?: readonly string[];
}

/**
 * One client's rules for one kind: a name is allowed when it matches an allow pattern (or no
 * allow list is given) and matches no deny pattern — deny wins.
 */
export class AccessRule {
  private readonly allow: GlobSet | undefined;
  private readonly deny: GlobSet | undefined;

  constructor(patterns: AccessPatterns) {
    this.allow = patterns.allow === undefined ? undefined : (compileGlobs(patterns.allow) ?? new GlobSet([]));
    this.deny = compileGlobs(patterns.deny ?? []);
  }

  allows(name: string): boolean {
    if (this.allow !== undefined && !this.allow.test(name)) return false;
    return this.deny === undefined || !this.deny.test(name);
  }
}

/** What one client may see and use; a kind without rules is open. */
export interface ClientAccess {
  tools: AccessRule | undefined;
  resources: AccessRule | undefined;
  prompts: AccessRule | undefined;
}

export function compileAccess(rules: {
  tools?: AccessPatterns;
  resources?: AccessPatterns;
  prompts?: AccessPatterns;
}): ClientAccess | undefined {
  if (!rules.tools && !rules.resources && !rules.prompts) return undefined;
  return {
    tools: rules.tools ? new AccessRule(rules.tools) : undefined,
    resources: rules.resources ? new AccessRule(rules.resources) : undefined,
    prompts: rules.prompts ? new AccessRule(rules.prompts) : undefined,
  };
}
