import { createHmac, randomBytes } from 'node:crypto';
import {
  GenerateMacCommand,
  KMSClient,
  KMSInternalException,
  KMSInvalidMacException,
  VerifyMacCommand,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';
import { KmsAuditSigner } from '../../src/adapters/audit/kms-signer';
import { DependencyError } from '../../src/core/errors';
import { describeAuditSignerContract } from './audit-signer.contract';

const KEY_A = 'arn:aws:kms:eu-central-1:111122223333:key/aaaaaaaa-12ab-34cd-56ef-1234567890ab';
const KEY_B = 'arn:aws:kms:eu-central-1:111122223333:key/bbbbbbbb-12ab-34cd-56ef-1234567890ab';

/** KMS as it behaves for HMAC keys: a secret per key id, InvalidMac on a mismatch. */
function fakeKms() {
  const client = new KMSClient({
    region: 'eu-central-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
  const mock = mockClient(client);
  const secrets = new Map([KEY_A, KEY_B].map((k) => [k, randomBytes(32)]));
  const mac = (keyId: string, message: Uint8Array) =>
    createHmac('sha256', secrets.get(keyId)!).update(message).digest();
  mock
    .on(GenerateMacCommand)
    .callsFake((input: { KeyId: string; Message: Uint8Array; MacAlgorithm: string }) => {
      expect(input.MacAlgorithm).toBe('HMAC_SHA_256');
      return { Mac: new Uint8Array(mac(input.KeyId, input.Message)), KeyId: input.KeyId };
    });
  mock
    .on(VerifyMacCommand)
    .callsFake((input: { KeyId: string; Message: Uint8Array; Mac: Uint8Array }) => {
      if (!Buffer.from(input.Mac).equals(mac(input.KeyId, input.Message))) {
        throw new KMSInvalidMacException({ message: 'invalid mac', $metadata: {} });
      }
      return { MacValid: true, KeyId: input.KeyId };
    });
  return { client, mock };
}

describeAuditSignerContract('AWS KMS HMAC key (mocked)', async () => {
  const { client } = fakeKms();
  return { signer: new KmsAuditSigner(client, KEY_A), other: new KmsAuditSigner(client, KEY_B) };
});

describe('KmsAuditSigner', () => {
  it('names KMS as the failed dependency when KMS fails', async () => {
    const { client, mock } = fakeKms();
    mock
      .on(GenerateMacCommand)
      .rejects(new KMSInternalException({ message: 'boom', $metadata: {} }));
    mock.on(VerifyMacCommand).rejects(new KMSInternalException({ message: 'boom', $metadata: {} }));
    const signer = new KmsAuditSigner(client, KEY_A);
    const message = new TextEncoder().encode('x');
    await expect(signer.sign(message)).rejects.toBeInstanceOf(DependencyError);
    await expect(signer.verify(message, 'AAAA')).rejects.toBeInstanceOf(DependencyError);
  });

  it('signs with the configured key id', async () => {
    const { client, mock } = fakeKms();
    await new KmsAuditSigner(client, KEY_A).sign(new TextEncoder().encode('x'));
    expect(mock.commandCalls(GenerateMacCommand)[0]!.args[0].input.KeyId).toBe(KEY_A);
  });
});
