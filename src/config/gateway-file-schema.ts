import { z } from 'zod';
import { CLIENT_NAME_PATTERN } from '../core/client-id';
import { CLIENT_KEY_PATTERN, clientCredentialProblems, clientPolicyFields } from './client-policy-schema';
import { assignReplicaIds } from './replica-id';
import { ServiceSchema } from './service-schema';

/** gateway.yaml: the services with their replicas, and the clients with their credentials and policies. */

/** The services of gateway.yaml, each replica given its stable id (explicit ids unique across the file). */
export const ServicesSchema = z
  .record(ServiceSchema)
  .default({})
  .transform((services, ctx) => assignReplicaIds(services, ctx));

/**
 * One client of gateway.yaml's `clients:` section. Other areas add their own per-client fields
 * (authorization patterns, rate limits), so unknown keys are kept, not refused.
 */
export const ClientSchema = z
  .object({
    /**
     * The client's API keys as `sha256:<64 hex>` digests of the key (several for rotation: the old
     * and the new key both work until the old one is removed). Plain keys are never stored.
     */
    apiKeys: z
      .array(z.string().regex(/^sha256:[0-9a-fA-F]{64}$/, 'use sha256:<64 hex digits> (the key digest)'))
      .default([]),
    /**
     * Token subjects (the AUTH_JWT_CLIENT_ID_CLAIM of a JWT or OAuth token) that are this client. With
     * a list, only these subjects are this client; with several AUTH_MODEs this is how a token joins an
     * API-key client (README "One client id per identity").
     */
    tokenSubjects: z.array(z.string().regex(CLIENT_NAME_PATTERN, 'not a valid client name')).optional(),
    /** Client certificate names (CN or SAN, per AUTH_MTLS_CLIENT_ID) that are this client; as tokenSubjects. */
    certificateNames: z.array(z.string().regex(CLIENT_NAME_PATTERN, 'not a valid client name')).optional(),
    /** A disabled client is refused on every transport (401), whatever credential it presents. */
    disabled: z.boolean().default(false),
    /** Rate limits and tool/resource/prompt rules (src/config/client-policy-schema.ts). */
    ...clientPolicyFields,
  })
  .strict();
/** As written in gateway.yaml (defaults optional), so overrides and S5 updates can name a subset. */
export type ClientConfig = z.input<typeof ClientSchema>;

export const FileSchema = z
  .object({
    defaultService: z.string().optional(),
    services: ServicesSchema,
    /** Clients: credentials, rate limits and authorization (`*`: every client without an entry; README "Security"). */
    clients: z
      .record(z.string().regex(CLIENT_KEY_PATTERN, 'not a valid client id'), ClientSchema)
      .default({})
      .superRefine((clients, ctx) => {
        for (const message of clientCredentialProblems(clients))
          ctx.addIssue({ code: z.ZodIssueCode.custom, message });
      }),
  })
  .strict();
