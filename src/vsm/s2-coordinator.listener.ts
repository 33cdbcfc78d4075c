import { Inject, Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { VsmChannel, type CheckOscillationEvent, type OscillationVerdict } from './vsm.channels';

/**
 * Default S2 (coordination): keeps a client from flapping between transports. At most
 * `maxSwitches` switches per client inside a sliding window; the next one is refused.
 * A deployment replaces this by providing its own listener on `s2_coordination`.
 */
@Injectable()
export class S2Coordinator {
  private readonly switches = new Map<string, number[]>();

  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  @OnEvent(VsmChannel.S2Coordination)
  checkOscillation(event: CheckOscillationEvent): OscillationVerdict {
    return this.decide(event.clientId, Date.now());
  }

  /** Records the switch when it is allowed; a refused switch does not count against the client. */
  decide(clientId: string, now: number): OscillationVerdict {
    const { maxSwitches, windowMs } = this.config.s2;
    const recent = (this.switches.get(clientId) ?? []).filter((t) => now - t < windowMs);
    if (recent.length >= maxSwitches) {
      this.switches.set(clientId, recent);
      const retryInMs = recent.length > 0 ? windowMs - (now - recent[0]) : windowMs;
      return {
        allowed: false,
        switchesInWindow: recent.length,
        reason: `transport switch refused: ${recent.length} switches in the last ${Math.round(windowMs / 1000)} s (limit ${maxSwitches}); retry in ${Math.ceil(retryInMs / 1000)} s`,
      };
    }
    recent.push(now);
    this.switches.set(clientId, recent);
    this.prune(now, windowMs);
    return { allowed: true, switchesInWindow: recent.length };
  }

  /** Forgets clients whose switches all left the window, so the map tracks only active flappers. */
  private prune(now: number, windowMs: number): void {
    if (this.switches.size < 1024) return;
    for (const [clientId, times] of this.switches) {
      if (times.every((t) => now - t >= windowMs)) this.switches.delete(clientId);
    }
  }
}
