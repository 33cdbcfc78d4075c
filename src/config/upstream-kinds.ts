import { z } from 'zod';
import type { UpstreamTransportKind } from '../core/transport-kind';
import { int } from './schema-fields';

/**
 * The upstream kinds a replica of gateway.yaml may name in `transport`, each with its fields:
 * the configuration half of the upstream registry. src/upstream/upstream-kinds.ts is the other
 * half (the connection that serves each kind, keyed by the same names); configuration sits below
 * the upstream layer, so it declares what a kind accepts and never what builds it.
 */

/** Fields every replica has, whatever its transport (see README "Routing"). */
const replicaFields = {
  /**
   * Stable name of the replica (its position on the hash ring is derived from it). When unset it
   * is derived from the service and the replica's URL or command, so editing the list renames no
   * other replica. Unique across the file.
   */
  id: z
    .string()
    .regex(/^[A-Za-z0-9._~-]{1,64}$/, 'use 1-64 letters, digits or . _ ~ -')
    .optional(),
  /** Share of the service's sessions, relative to the other replicas' weights. */
  weight: int(1, 1000).default(1),
  /** A draining replica takes no new sessions; the sessions it serves stay. */
  draining: z.boolean().optional(),
};

const urlString = z
  .string()
  .url()
  .refine((u) => /^(https?):\/\//.test(u), 'must be an http:// or https:// URL');

const wsUrlString = z
  .string()
  .url()
  .refine((u) => /^wss?:\/\//.test(u), 'must be a ws:// or wss:// URL');

const streamableHttp = z
  .object({
    transport: z.literal('streamable-http'),
    url: urlString,
    /** Extra HTTP headers sent to the upstream (e.g. its API key). */
    headers: z.record(z.string()).default({}),
    ...replicaFields,
  })
  .strict();

const sse = z
  .object({
    transport: z.literal('sse'),
    url: urlString,
    headers: z.record(z.string()).default({}),
    ...replicaFields,
  })
  .strict();

const ws = z
  .object({
    transport: z.literal('ws'),
    /** MCP over WebSocket (subprotocol `mcp`, one JSON-RPC message per text frame). */
    url: wsUrlString,
    /** Extra HTTP headers sent with the upgrade request (e.g. its API key). */
    headers: z.record(z.string()).default({}),
    ...replicaFields,
  })
  .strict();

const stdio = z
  .object({
    transport: z.literal('stdio'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: z.record(z.string()).default({}),
    cwd: z.string().optional(),
    ...replicaFields,
  })
  .strict();

const embedded = z
  .object({
    transport: z.literal('embedded'),
    /** Which in-process server: the demo, or the conformance fixture server used by tests. */
    server: z.enum(['demo']).default('demo'),
    ...replicaFields,
  })
  .strict();

/**
 * One entry per upstream kind; a new kind is one entry here (its fields, spreading nothing but
 * `replicaFields`) and one in src/upstream/upstream-kinds.ts. The order is the order validation
 * errors list the accepted `transport` values in.
 */
export const UPSTREAM_KINDS = [streamableHttp, sse, ws, stdio, embedded] as const;

/** The `transport` names of UPSTREAM_KINDS. */
export type UpstreamKindName = (typeof UPSTREAM_KINDS)[number]['shape']['transport']['value'];

/** Compiles only while UPSTREAM_KINDS and core's UpstreamTransportKind name the same kinds. */
type SameNames<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const namesMatch: SameNames<UpstreamKindName, UpstreamTransportKind> = true;
void namesMatch;
