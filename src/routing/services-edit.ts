import { isDeepStrictEqual } from 'node:util';
import type { ServiceConfig } from '../config/gateway-config';
import type { RoutingTable } from './routing-table';

/** What one edit of gateway.yaml changed, for the log line that reports it. */
export interface EditSummary {
  servicesAdded: string[];
  servicesRemoved: string[];
  /** Services whose mode, routing, pool or breaker settings changed. */
  servicesChanged: string[];
  replicasAdded: string[];
  replicasRemoved: string[];
  replicasChanged: string[];
}

/** Problems that make an edit impossible to apply to the live table (besides the schema's). */
export function editProblems(
  table: RoutingTable,
  previous: Record<string, ServiceConfig>,
  next: Record<string, ServiceConfig>,
  defaultService: string,
): string[] {
  const problems: string[] = [];
  if (!next[defaultService])
    problems.push(`defaultService "${defaultService}" is not one of the declared services`);
  for (const [name, service] of Object.entries(next)) {
    service.replicas.forEach((r, i) => {
      const owner = table.ownerOf(r.id);
      // A replica added through the admin API to another service holds the id.
      if (owner !== undefined && owner !== name && !previous[owner]?.replicas.some((p) => p.id === r.id)) {
        problems.push(
          `services.${name}.replicas.${i}.id: replica id "${r.id}" is used by service "${owner}"`,
        );
      }
    });
  }
  return problems;
}

/**
 * Applies what changed between two versions of the file, and only that: a replica drained or
 * added through the admin API stays as it is unless the edit touches that same replica. The
 * rings change incrementally. Call editProblems first.
 */
export function applyServicesEdit(
  table: RoutingTable,
  previous: Record<string, ServiceConfig>,
  next: Record<string, ServiceConfig>,
  defaultService: string,
): EditSummary {
  const summary: EditSummary = {
    servicesAdded: [],
    servicesRemoved: [],
    servicesChanged: [],
    replicasAdded: [],
    replicasRemoved: [],
    replicasChanged: [],
  };
  // Removals first, so an id that moves from one service to another is free when it is added.
  for (const name of Object.keys(previous)) {
    if (next[name] || !table.hasService(name)) continue;
    table.removeService(name);
    summary.servicesRemoved.push(name);
  }
  for (const [name, service] of Object.entries(next)) {
    const before = previous[name];
    if (!table.hasService(name)) {
      table.addService(name, service);
      summary.servicesAdded.push(name);
      continue;
    }
    if (
      !before ||
      before.mode !== service.mode ||
      !isDeepStrictEqual(before.routing, service.routing) ||
      !isDeepStrictEqual(before.pool, service.pool) ||
      !isDeepStrictEqual(before.breaker, service.breaker)
    ) {
      table.updateService(name, {
        mode: service.mode,
        routing: service.routing,
        pool: service.pool,
        breaker: service.breaker,
      });
      summary.servicesChanged.push(name);
    }
    const nextIds = new Set(service.replicas.map((r) => r.id));
    for (const old of before?.replicas ?? []) {
      if (nextIds.has(old.id) || !table.replicaIds(name).includes(old.id)) continue;
      table.removeReplica(name, old.id);
      summary.replicasRemoved.push(old.id);
    }
    for (const replica of service.replicas) {
      const was = before?.replicas.find((r) => r.id === replica.id);
      const live = table.replicaIds(name).includes(replica.id);
      if (!live) {
        if (table.ownerOf(replica.id) !== undefined)
          table.removeReplica(table.ownerOf(replica.id)!, replica.id);
        table.addReplica(name, replica);
        summary.replicasAdded.push(replica.id);
      } else if (!was || !isDeepStrictEqual(normalise(was), normalise(replica))) {
        table.replaceReplica(name, replica);
        summary.replicasChanged.push(replica.id);
      }
    }
  }
  table.defaultService = defaultService;
  return summary;
}

/** `draining: false` and an absent `draining` mean the same. */
function normalise<T extends { draining?: boolean }>(r: T): T {
  return r.draining ? r : { ...r, draining: false };
}
