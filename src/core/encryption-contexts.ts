/**
 * Every encryption context the vault hands to the envelope (and so to KMS), by purpose,
 * with exactly its keys. The KMS key policy of the CDK app (infra/) allows these and
 * nothing else, so a new purpose must be added here or KMS refuses it in production;
 * test/unit/encryption-contexts.test.ts checks each context the vault builds against it.
 */
export const ENCRYPTION_CONTEXT_KEYS = {
  'jumio-facemap': ['purpose', 'enrollment', 'user', 'format'],
  'vault-key': ['purpose', 'name', 'format'],
  'key-probe': ['purpose', 'name', 'format'],
  'readiness-probe': ['purpose', 'format'],
} as const satisfies Record<string, readonly string[]>;
