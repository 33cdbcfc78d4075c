import { SseTransportModule } from './sse/sse-transport.module';
import { TlsModule } from './http/tls-reload.service';
import { StreamableHttpModule } from './streamable-http/streamable-http.module';
import { WsGatewayModule } from './ws/ws-gateway.module';

/** The client transports the gateway serves (registry array, see CONVENTIONS 5). */
export const TRANSPORT_MODULES = [TlsModule, StreamableHttpModule, SseTransportModule, WsGatewayModule];
