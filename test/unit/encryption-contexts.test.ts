import { facemapContext } from '../../src/core/enrollment/context';
import { ENCRYPTION_CONTEXT_KEYS } from '../../src/core/encryption-contexts';
import { keyProbeContext, keyProbeName, vaultKeyContext } from '../../src/core/keys/vault-keys';
import type { EncryptionContext } from '../../src/core/ports';
import { READINESS_CONTEXT } from '../../src/core/readiness';

/** The KMS key policy (infra/) allows the listed shapes only: every context must fit one. */
describe('encryption contexts', () => {
  const built: Array<[string, EncryptionContext]> = [
    ['facemap', facemapContext('scan-1', 'user-1', (u) => `h(${u})`)],
    ['vault key', vaultKeyContext('user-reference-hmac-v1')],
    ['key probe', keyProbeContext(keyProbeName('local:facemap-vault/local-0123'))],
    ['readiness', READINESS_CONTEXT],
  ];

  it.each(built)('the %s context has exactly the keys listed for its purpose', (_l, context) => {
    const purpose = context.purpose as keyof typeof ENCRYPTION_CONTEXT_KEYS;
    expect(Object.keys(ENCRYPTION_CONTEXT_KEYS)).toContain(purpose);
    expect(Object.keys(context).sort()).toEqual([...ENCRYPTION_CONTEXT_KEYS[purpose]].sort());
  });

  it('lists no purpose the vault does not use', () => {
    expect(new Set(built.map(([, c]) => c.purpose))).toEqual(
      new Set(Object.keys(ENCRYPTION_CONTEXT_KEYS)),
    );
  });
});
