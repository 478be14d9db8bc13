import type { AuditSigner } from '../../src/core/ports';

const text = (s: string) => new TextEncoder().encode(s);

/** What every AuditSigner adapter must do; run by one test file per adapter. */
export function describeAuditSignerContract(
  name: string,
  open: () => Promise<{ signer: AuditSigner; other: AuditSigner }>,
): void {
  describe(`AuditSigner contract: ${name}`, () => {
    let signer: AuditSigner;
    let other: AuditSigner;
    beforeAll(async () => {
      ({ signer, other } = await open());
    });

    it('verifies what it signed', async () => {
      const message = text('{"toSequence":42}');
      const signature = await signer.sign(message);
      expect(signature).toMatch(/^[A-Za-z0-9+/]+=*$/);
      await expect(signer.verify(message, signature)).resolves.toBe(true);
    });

    it('refuses a signature over another message', async () => {
      const signature = await signer.sign(text('{"toSequence":42}'));
      await expect(signer.verify(text('{"toSequence":43}'), signature)).resolves.toBe(false);
    });

    it('refuses a changed, truncated, empty or malformed signature', async () => {
      const message = text('digest');
      const signature = await signer.sign(message);
      const bytes = Buffer.from(signature, 'base64');
      bytes[0] = bytes[0]! ^ 1;
      for (const bad of [bytes.toString('base64'), signature.slice(0, 10), '', '!!not base64']) {
        await expect(signer.verify(message, bad)).resolves.toBe(false);
      }
    });

    it("refuses another key's signature, and names its key without revealing it", async () => {
      const message = text('digest');
      await expect(signer.verify(message, await other.sign(message))).resolves.toBe(false);
      expect(signer.keyId).not.toBe(other.keyId);
      expect(signer.keyId.length).toBeGreaterThan(0);
    });
  });
}
