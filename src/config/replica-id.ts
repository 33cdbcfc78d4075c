import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { ReplicaConfig, ResolvedReplica, ServiceConfig } from './service-schema';

/**
 * What identifies a replica when it has no explicit id: where it is (URL) or what runs (command,
 * arguments, working directory). Weight, headers, env and draining are left out on purpose, so a
 * reweight or a rotated API key keeps the replica's id and with it its place on the hash ring.
 */
function identity(replica: ReplicaConfig): string {
  // Every network transport (streamable-http, sse, ws…) is identified by its URL.
  if ('url' in replica) return `${replica.transport}\u0000${replica.url}`;
  switch (replica.transport) {
    case 'stdio':
      return `stdio\u0000${replica.command}\u0000${replica.args.join('\u0000')}\u0000${replica.cwd ?? ''}`;
    case 'embedded':
      return `embedded\u0000${replica.server}`;
    default:
      // A transport added later without a case here still gets an id from everything it declares.
      return JSON.stringify(replica);
  }
}

/** `<service>-<8 hex>`: stable across edits of other replicas, readable in logs and URLs. */
export function derivedReplicaId(service: string, replica: ReplicaConfig): string {
  const digest = createHash('sha256').update(identity(replica)).digest('hex').slice(0, 8);
  return `${service}-${digest}`;
}

type ParsedServices = Record<string, Omit<ServiceConfig, 'replicas'> & { replicas: ReplicaConfig[] }>;

/**
 * Gives every replica its id. Explicit ids must be unique across the file (a breaker or a pool is
 * per replica, whatever service lists it). Two replicas declared identically get `-2`, `-3`… in
 * list order: they are interchangeable, so which one is which does not matter.
 */
export function assignReplicaIds(
  services: ParsedServices,
  ctx?: z.RefinementCtx,
): Record<string, ServiceConfig> {
  const taken = new Map<string, string>();
  for (const [name, service] of Object.entries(services)) {
    service.replicas.forEach((r, i) => {
      if (r.id === undefined) return;
      const other = taken.get(r.id);
      if (other !== undefined) {
        ctx?.addIssue({
          code: 'custom',
          path: [name, 'replicas', i, 'id'],
          message: `replica id "${r.id}" is already used by ${other}`,
        });
      } else taken.set(r.id, `services.${name}.replicas.${i}`);
    });
  }
  const out: Record<string, ServiceConfig> = {};
  for (const [name, service] of Object.entries(services)) {
    const replicas: ResolvedReplica[] = service.replicas.map((r) => {
      if (r.id !== undefined) return r as ResolvedReplica;
      const base = derivedReplicaId(name, r);
      let id = base;
      for (let n = 2; taken.has(id); n++) id = `${base}-${n}`;
      taken.set(id, name);
      return { ...r, id };
    });
    out[name] = { ...service, replicas };
  }
  return out;
}
