import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import {
  VsmChannel,
  type CheckComplianceEvent,
  type CheckOscillationEvent,
  type PolicyVerdict,
  type VerifyIdentityEvent,
  type OscillationVerdict,
  type S1Event,
  type VsmChannelName,
  type VsmEventMap,
} from './vsm.channels';

/**
 * Publishes on the VSM channels. S1 sees every client message, so its publish must cost
 * nothing when nobody listens and must never delay forwarding when someone does: events
 * are queued and handed to listeners in one batch on the next turn of the event loop.
 */
@Injectable()
export class VsmBus {
  private s1Queue: S1Event[] = [];
  private s1Scheduled = false;
  private readonly flushS1 = () => this.drainS1();
  /**
   * Events per channel the gateway put on the bus ("variety flow"), read by /metrics. S1 counts
   * every client message, also when nobody listens (then no payload is built).
   */
  readonly events: Record<VsmChannelName, number> = {
    s1_operations: 0,
    s2_coordination: 0,
    s3_control: 0,
    s4_intelligence: 0,
    s5_policy: 0,
    algedonic: 0,
  };
  /** S3 commands that arrived (counted by a listener in ops). */
  readonly received: Record<'s3_control', number> = { s3_control: 0 };

  constructor(private readonly emitter: EventEmitter2) {}

  /** True when some listener is on the channel; callers skip building payloads otherwise. */
  hasListeners(channel: VsmChannelName): boolean {
    return this.emitter.hasListeners(channel) === true;
  }

  publishS1(event: S1Event): void {
    this.events.s1_operations++;
    this.s1Queue.push(event);
    if (!this.s1Scheduled) {
      this.s1Scheduled = true;
      setImmediate(this.flushS1);
    }
  }

  publish<C extends VsmChannelName>(channel: C, event: VsmEventMap[C]): void {
    this.events[channel]++;
    this.emitter.emit(channel, event);
  }

  /**
   * Asks S2 whether a session may switch transport. Every listener answers; one refusal
   * refuses. With no listener at all the switch is allowed.
   */
  async checkOscillation(event: CheckOscillationEvent): Promise<OscillationVerdict> {
    this.events.s2_coordination++;
    const answers = (await this.emitter.emitAsync(VsmChannel.S2Coordination, event)) as Array<
      OscillationVerdict | undefined
    >;
    let verdict: OscillationVerdict = { allowed: true, switchesInWindow: 0 };
    for (const answer of answers) {
      if (!answer) continue;
      if (!answer.allowed) return answer;
      verdict = answer;
    }
    return verdict;
  }

  /**
   * Asks S5 a question (check_compliance, verify_identity). Every listener may answer; one
   * refusal refuses. A listener that does not answer within `timeoutMs`, or fails, leaves the
   * decision to `fallback` (S5_DEFAULT_VERDICT): the gateway never waits on policy for longer.
   */
  async askPolicy(
    event: CheckComplianceEvent | VerifyIdentityEvent,
    timeoutMs: number,
    fallback: 'allow' | 'deny',
  ): Promise<PolicyVerdict> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const defaulted = (why: string): PolicyVerdict => ({
      allowed: fallback === 'allow',
      reason: `${why}; the default (${fallback}) applies`,
      defaulted: true,
    });
    try {
      const answers = await Promise.race([
        this.emitter.emitAsync(VsmChannel.S5Policy, event) as Promise<Array<PolicyVerdict | undefined>>,
        timeout,
      ]);
      if (answers === 'timeout') return defaulted(`S5 did not answer ${event.type} within ${timeoutMs} ms`);
      for (const answer of answers) if (answer && answer.allowed === false) return answer;
      return { allowed: true };
    } catch (err) {
      return defaulted(`S5 failed to answer ${event.type}: ${(err as Error)?.message ?? String(err)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private drainS1(): void {
    this.s1Scheduled = false;
    const batch = this.s1Queue;
    this.s1Queue = [];
    for (const event of batch) {
      try {
        this.emitter.emit(VsmChannel.S1Operations, event);
      } catch {
        // A failing listener is its own problem; the gateway keeps forwarding.
      }
    }
  }
}
