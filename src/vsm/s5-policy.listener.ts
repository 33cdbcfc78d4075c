import { Inject, Injectable } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { GATEWAY_CONFIG } from '../config/config.module';
import type { GatewayConfig } from '../config/gateway-config';
import { VsmChannel, type PolicyVerdict, type S5Event } from './vsm.channels';

/**
 * Default S5 (policy): approves what the configuration already allows. The gateway's own rules
 * (credentials, disabled and allowed clients, the admin token) have run before S5 is asked, so
 * the default has nothing more to refuse. A deployment adds its own listener on `s5_policy`;
 * its refusal wins, since one refusal refuses.
 */
@Injectable()
export class S5PolicyListener {
  constructor(@Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig) {}

  @OnEvent(VsmChannel.S5Policy)
  answer(event: S5Event): PolicyVerdict | undefined {
    switch (event.type) {
      case 'check_compliance':
        return { allowed: true };
      case 'verify_identity':
        // Gateway-changing operations come only through the admin API, which its token guards.
        return { allowed: this.config.admin.token !== undefined };
      default:
        return undefined; // policy_update: each area listens for its own constraint keys
    }
  }
}
