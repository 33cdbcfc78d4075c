import { Module } from '@nestjs/common';
import { MessagePolicyModule } from '../../policy/message-policy.module';
import { PolicyModule } from '../../policy/policy.module';
import { SessionModule } from '../../session/session.module';
import { WsGateway } from './ws.gateway';

/**
 * The WebSocket client transport. Its gateway needs the sessions, authentication/admission and
 * the per-message policy; configuration and metrics are the cross-cutting globals every layer
 * reads (the metrics module sits above the transports, so it is not imported from here).
 */
@Module({
  imports: [SessionModule, PolicyModule, MessagePolicyModule],
  providers: [WsGateway],
})
export class WsGatewayModule {}
