import type { Session } from './session';

/**
 * Where sessions live. In-memory for one node; cluster mode replaces it with a
 * Redis-backed store that keeps session metadata and outboxes shared between nodes.
 */
export interface SessionStore {
  get(id: string): Session | undefined;
  set(session: Session): void;
  delete(id: string): void;
  values(): IterableIterator<Session>;
  readonly size: number;
}

export class InMemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, Session>();

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  set(session: Session): void {
    this.sessions.set(session.id, session);
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  values(): IterableIterator<Session> {
    return this.sessions.values();
  }

  get size(): number {
    return this.sessions.size;
  }
}
