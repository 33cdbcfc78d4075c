import type { ClientTransport } from '../core/transport-kind';

/**
 * The VSM channels (DESIGN §8): names and payloads exactly as the seed defines them,
 * as discriminated unions so a listener's switch is checked for exhaustiveness.
 */
export const VsmChannel = {
  S1Operations: 's1_operations',
  S2Coordination: 's2_coordination',
  S3Control: 's3_control',
  S4Intelligence: 's4_intelligence',
  S5Policy: 's5_policy',
  Algedonic: 'algedonic',
} as const;
export type VsmChannelName = (typeof VsmChannel)[keyof typeof VsmChannel];

/** S1: every incoming client message. */
export interface ExternalMessageEvent {
  type: 'external_message';
  clientId: string;
  payload: unknown;
  metadata: {
    sessionId: string;
    transport: ClientTransport;
    service: string;
    receivedAt: number;
  };
}
export type S1Event = ExternalMessageEvent;

/** S2: asked before a session switches transport; the answer allows or refuses the switch. */
export interface CheckOscillationEvent {
  type: 'check_oscillation';
  clientId: string;
  from: ClientTransport;
  to: ClientTransport;
}
export type S2Event = CheckOscillationEvent;
export interface OscillationVerdict {
  allowed: boolean;
  reason?: string;
  switchesInWindow: number;
}

/** S3: commands the gateway obeys. */
export type S3Event =
  | { type: 'allocate_connections'; transport: string; count: number }
  | { type: 'adjust_rate_limit'; clientId: string; newLimit: number }
  /**
   * `transport`: a replica id, a service name (all its replicas), an upstream transport kind
   * (`stdio`, `streamable-http`, `sse`, `ws`, `embedded`: every replica using it). `auto` (and
   * `half_open`, which lets the next outcome decide) hands the breaker back to its statistics.
   */
  | { type: 'force_circuit_state'; transport: string; state: 'open' | 'closed' | 'half_open' | 'auto' };

/** S4: what the gateway reports upward. */
export type S4Event =
  | { type: 'gateway_metrics'; stats: Record<string, number> }
  | { type: 'usage_pattern'; clientId: string; patternType: string }
  | { type: 'anomaly_detected'; details: Record<string, unknown> };

/**
 * S5: policy the gateway subscribes to or asks about. `policy_update` is published to the gateway;
 * each area reads its own constraint keys and ignores the rest (README "Security" lists them).
 * `check_compliance` and `verify_identity` are questions: every listener may answer with a
 * {@link PolicyVerdict}; one refusal refuses, no answer in S5_TIMEOUT_MS counts as S5_DEFAULT_VERDICT.
 */
export interface PolicyUpdateEvent {
  type: 'policy_update';
  scope: 'gateway';
  constraints: Record<string, unknown>;
}
export interface CheckComplianceEvent {
  type: 'check_compliance';
  /** What is about to happen: `session.admit`, `admin.<METHOD> <path>`. */
  action: string;
  context: Record<string, unknown>;
}
export interface VerifyIdentityEvent {
  type: 'verify_identity';
  /** The gateway-changing operation, e.g. `admin.POST /admin/services/demo/replicas`. */
  operation: string;
  /** Who asks (admin API: `admin`), and from where. */
  context?: Record<string, unknown>;
}
export type S5Event = PolicyUpdateEvent | CheckComplianceEvent | VerifyIdentityEvent;
export interface PolicyVerdict {
  allowed: boolean;
  reason?: string;
  /** Set when no listener answered in time (or one failed) and the configured default decided. */
  defaulted?: boolean;
}

/** Algedonic: bypasses the hierarchy when something hurts (or stops hurting). */
export type AlgedonicEvent =
  | { type: 'pain'; severity: 'critical'; source: string; message: string; context: Record<string, unknown> }
  | { type: 'pleasure'; severity: 'moderate'; source: string; recoveryMetrics: Record<string, unknown> };

export interface VsmEventMap {
  [VsmChannel.S1Operations]: S1Event;
  [VsmChannel.S2Coordination]: S2Event;
  [VsmChannel.S3Control]: S3Event;
  [VsmChannel.S4Intelligence]: S4Event;
  [VsmChannel.S5Policy]: S5Event;
  [VsmChannel.Algedonic]: AlgedonicEvent;
}
