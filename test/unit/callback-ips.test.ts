import { callbackIps } from '../../src/cli/callback-ips';
import { UsageError } from '../../src/cli/io';
import type { LookupAll } from '../../src/http/callback-origin';

describe('vault callback-ips', () => {
  const lookupFrom =
    (answers: Record<string, string[]>): LookupAll =>
    async (host) => {
      const found = answers[host];
      if (!found) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
      return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    };
  const text = { json: false };

  it('prints the allowlist line for the region and what changed against the built-in list', async () => {
    const lines: string[] = [];
    const code = await callbackIps(
      'eu',
      text,
      {},
      (l) => lines.push(l),
      lookupFrom({ 'callback.lon.jumio.com': ['34.253.41.236', '52.48.0.25', '203.0.113.9'] }),
    );
    expect(code).toBe(0);
    expect(lines.at(-1)).toBe('JUMIO_CALLBACK_ALLOWED_CIDRS=34.253.41.236,52.48.0.25,203.0.113.9');
    expect(lines.join('\n')).toContain('new since the built-in list: 203.0.113.9');
    expect(lines.join('\n')).toMatch(/no longer in DNS: .*35\.157\.27\.193/);
  });

  it('with --json, prints one object with the addresses, the changes and the line', async () => {
    const lines: string[] = [];
    const lookup = lookupFrom({ 'callback.lon.jumio.com': ['34.253.41.236', '203.0.113.9'] });
    expect(await callbackIps('EU', { json: true }, {}, (l) => lines.push(l), lookup)).toBe(0);
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(out).toMatchObject({
      region: 'EU',
      host: 'callback.lon.jumio.com',
      addresses: ['34.253.41.236', '203.0.113.9'],
      added: ['203.0.113.9'],
      line: 'JUMIO_CALLBACK_ALLOWED_CIDRS=34.253.41.236,203.0.113.9',
    });
    expect(out.gone).toEqual(expect.arrayContaining(['35.157.27.193']));
  });

  it('uses JUMIO_REGION by default and refuses an unknown region as a usage error', async () => {
    const lines: string[] = [];
    const lookup = lookupFrom({ 'callback.core-sgp.jumio.com': ['3.0.109.121'] });
    expect(
      await callbackIps(undefined, text, { JUMIO_REGION: 'SGP' }, (l) => lines.push(l), lookup),
    ).toBe(0);
    expect(lines.at(-1)).toBe('JUMIO_CALLBACK_ALLOWED_CIDRS=3.0.109.121');
    await expect(callbackIps('MARS', text, {}, (l) => lines.push(l), lookup)).rejects.toThrow(
      UsageError,
    );
  });

  it('prints nothing to deploy when DNS fails or answers with a private address', async () => {
    const lines: string[] = [];
    await expect(callbackIps('US', text, {}, (l) => lines.push(l), lookupFrom({}))).rejects.toThrow(
      /cannot refresh the allowlist/,
    );
    await expect(
      callbackIps(
        'US',
        text,
        {},
        (l) => lines.push(l),
        lookupFrom({ 'callback.jumio.com': ['10.0.0.5'] }),
      ),
    ).rejects.toThrow(/cannot refresh the allowlist/);
    expect(lines.some((l) => l.startsWith('JUMIO_CALLBACK_ALLOWED_CIDRS='))).toBe(false);
  });
});
