import { Injectable } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import {
  VsmChannel,
  type CheckOscillationEvent,
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
  /** S3 commands that arrived (counted by a listener in observability). */
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
