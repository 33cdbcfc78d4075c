/** The part of the `hashring` package (libketama-compatible, no bundled types) the ring bench uses. */
declare module 'hashring' {
  class HashRing {
    constructor(
      servers: string[] | Record<string, number>,
      algorithm?: string,
      options?: Record<string, unknown>,
    );
    get(key: string): string | undefined;
    range(key: string, size?: number, unique?: boolean): string[];
    add(servers: string[] | Record<string, number>): this;
    remove(server: string): this;
  }
  export = HashRing;
}
