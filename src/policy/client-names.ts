import type { AuthModeName, ClientConfig } from '../config/gateway-config';
import { ANONYMOUS_CLIENT } from '../core/client-id';
import { isNamespaced } from '../config/client-policy-schema';

/** The modes whose names come from outside the configuration; each is its id prefix when kept apart. */
export type NamingMode = 'jwt' | 'oauth' | 'mtls' | 'none';

/**
 * Which client a proven name is, when several authentication modes are on (README "One client id
 * per identity"). Without this, an API-key client `ops`, a JWT with `sub: ops` and a certificate
 * with CN `ops` would be one client: one set of rules and limits, and each could use the others'
 * sessions.
 *
 * - A `clients:` entry that lists credentials of a mode that is on — `apiKeys`, `tokenSubjects`,
 *   `certificateNames` — is proven by exactly those: listing several kinds joins them into one client.
 * - Any other name keeps its bare form when it comes from the first mode on of tokens (jwt/oauth),
 *   certificates (mtls), claims (none) — the one source of outside names, as with a single mode —
 *   unless an entry above claims that name, it is `anonymous`, or it starts with a mode prefix.
 *   Then, and for every other mode's names, the id is `<mode>:<name>`.
 *
 * With one mode on and no credential lists nothing is renamed: single-mode deployments keep their ids.
 */
export class ClientNames {
  /** The mode whose unlisted names stay bare. */
  private readonly bare: 'token' | 'mtls' | 'none' | undefined;
  /** Whether any name can be renamed at all (several modes, or credential lists). */
  private readonly active: boolean;
  /** Entry names proven only by the credentials they list. */
  private readonly claimed = new Set<string>();
  private readonly subjects = new Map<string, string>();
  private readonly certificates = new Map<string, string>();

  constructor(modes: readonly AuthModeName[], clients: Record<string, ClientConfig>) {
    const on = new Set(modes);
    const tokens = on.has('jwt') || on.has('oauth');
    this.bare = tokens ? 'token' : on.has('mtls') ? 'mtls' : on.has('none') ? 'none' : undefined;
    const kinds = (tokens ? 1 : 0) + (on.has('mtls') ? 1 : 0) + (on.has('none') ? 1 : 0);
    for (const [id, client] of Object.entries(clients)) {
      if (id === '*') continue;
      let claims = on.has('api_key') && (client.apiKeys ?? []).length > 0;
      if (tokens) {
        for (const subject of client.tokenSubjects ?? []) {
          if (!this.subjects.has(subject)) this.subjects.set(subject, id);
          claims = true;
        }
      }
      if (on.has('mtls')) {
        for (const name of client.certificateNames ?? []) {
          if (!this.certificates.has(name)) this.certificates.set(name, id);
          claims = true;
        }
      }
      if (claims) this.claimed.add(id);
    }
    this.active = kinds + (on.has('api_key') ? 1 : 0) > 1 || this.claimed.size > 0;
  }

  /** The client id of `name` proven by `via` (a token subject, a certificate name, a claimed id). */
  clientOf(via: NamingMode, name: string): string {
    if (!this.active) return name;
    if (via === 'none') {
      // A claim proves nothing: never an entry with credentials, and absent it stays anonymous.
      if (name === ANONYMOUS_CLIENT) return name;
      return this.bare === 'none' && this.free(name) ? name : `none:${name}`;
    }
    const listed = via === 'mtls' ? this.certificates.get(name) : this.subjects.get(name);
    if (listed !== undefined) return listed;
    const bare = via === 'mtls' ? this.bare === 'mtls' : this.bare === 'token';
    return bare && this.free(name) && name !== ANONYMOUS_CLIENT ? name : `${via}:${name}`;
  }

  /** Whether a bare name belongs to nobody else: not an entry with credentials, not a namespaced id. */
  private free(name: string): boolean {
    return !this.claimed.has(name) && !isNamespaced(name);
  }
}
