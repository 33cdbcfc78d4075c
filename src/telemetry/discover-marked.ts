import type { DiscoverableDecorator, DiscoveryService } from '@nestjs/core';

/**
 * The instances of the providers that carry `marker` (GAUGE_SOURCE, HEALTH_SOURCE), in the order
 * Nest registered them. Not `getProviders({ metadataKey })`: Nest links a class to one
 * discoverable key only (the last marker applied wins), and one provider may carry both markers;
 * the metadata itself is kept for each marker, so it is read here provider by provider (once, at
 * start-up).
 */
export function discoverMarked<T extends object, M>(
  discovery: DiscoveryService,
  marker: DiscoverableDecorator<M>,
): T[] {
  const found: T[] = [];
  for (const wrapper of discovery.getProviders()) {
    const instance: unknown = wrapper.instance;
    if (instance === null || typeof instance !== 'object') continue;
    if (discovery.getMetadataByDecorator(marker, wrapper) === undefined) continue;
    if (!found.includes(instance as T)) found.push(instance as T);
  }
  return found;
}
