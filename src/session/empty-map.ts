/** The empty map every session structure starts with; writing to it is a bug, so it refuses. */
class EmptyMap extends Map<any, any> {
  override set(): this {
    throw new Error('internal: write to the shared empty map');
  }
}

/**
 * Shared by every idle session: maps start as this sentinel and are allocated on first write,
 * so an idle session holds references instead of empty Maps.
 */
export const NO_ENTRIES: Map<any, any> = new EmptyMap();
