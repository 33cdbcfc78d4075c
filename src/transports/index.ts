import { SseTransportModule } from './sse/sse-transport.module';
import { StreamableHttpModule } from './streamable-http/streamable-http.module';

/** The client transports the gateway serves (registry array, see CONVENTIONS 5). */
export const TRANSPORT_MODULES = [StreamableHttpModule, SseTransportModule];
