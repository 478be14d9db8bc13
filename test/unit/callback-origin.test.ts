import express from 'express';
import request from 'supertest';
import type { Logger } from '../../src/core/ports';
import {
  AddressSpecError,
  CidrAllowlist,
  JUMIO_CALLBACK_HOSTS,
  JUMIO_CALLBACK_IPS,
  LOOPBACK_CIDRS,
  callbackOrigin,
  normalizeAddress,
  parseCidrList,
  parseTrustProxy,
  resolveCallbackHosts,
  type LookupAll,
  type RefusedCallback,
} from '../../src/http/callback-origin';

function recordingLogger(calls: { level: string; obj: object; msg?: string }[] = []): Logger {
  const at = (level: string) => (obj: object, msg?: string) => void calls.push({ level, obj, msg });
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => recordingLogger(calls),
  };
}

describe('published Jumio lists', () => {
  it('holds the documented addresses and DNS names per region', () => {
    expect(JUMIO_CALLBACK_IPS.US).toHaveLength(6);
    expect(JUMIO_CALLBACK_IPS.EU).toHaveLength(6);
    expect(JUMIO_CALLBACK_IPS.SGP).toEqual(['3.0.109.121', '52.76.184.73', '52.77.102.92']);
    expect(JUMIO_CALLBACK_IPS.US).toContain('34.202.241.227');
    expect(JUMIO_CALLBACK_IPS.EU).toContain('52.209.180.134');
    expect(JUMIO_CALLBACK_HOSTS).toEqual({
      US: 'callback.jumio.com',
      EU: 'callback.lon.jumio.com',
      SGP: 'callback.core-sgp.jumio.com',
    });
  });

  it('each region list allows its own addresses and none of the others', () => {
    const regions = ['US', 'EU', 'SGP'] as const;
    for (const region of regions) {
      const list = new CidrAllowlist(JUMIO_CALLBACK_IPS[region]);
      for (const other of regions) {
        for (const ip of JUMIO_CALLBACK_IPS[other]) {
          expect([region, ip, list.allows(ip)]).toEqual([region, ip, other === region]);
        }
      }
    }
  });
});

describe('normalizeAddress', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4', 'ipv4'],
    ['::ffff:1.2.3.4', '1.2.3.4', 'ipv4'],
    ['::FFFF:1.2.3.4', '1.2.3.4', 'ipv4'],
    ['0:0:0:0:0:ffff:7f00:1', '127.0.0.1', 'ipv4'],
    ['2001:DB8:0:0::1', '2001:db8::1', 'ipv6'],
    ['::1', '::1', 'ipv6'],
  ])('%s -> %s', (input, address, family) => {
    expect(normalizeAddress(input)).toEqual({ address, family });
  });

  it.each([
    undefined,
    '',
    'garbage',
    '1.2.3',
    '01.2.3.4',
    '256.1.1.1',
    'fe80::1%eth0',
    '1.2.3.4/8',
  ])('refuses %p', (input) => {
    expect(normalizeAddress(input)).toBeUndefined();
  });
});

describe('parseCidrList', () => {
  it('canonicalizes addresses and CIDRs, expands names, dedupes', () => {
    expect(
      parseCidrList(
        ' 1.2.3.4, 10.0.0.0/8  2001:DB8::/32\n::ffff:192.168.0.0/112, ::ffff:5.6.7.8, loopback, 1.2.3.4/32',
      ),
    ).toEqual([
      '1.2.3.4/32',
      '10.0.0.0/8',
      '2001:db8::/32',
      '192.168.0.0/16',
      '5.6.7.8/32',
      '127.0.0.0/8',
      '::1/128',
    ]);
    expect(parseCidrList('')).toEqual([]);
    expect(parseCidrList(' , ')).toEqual([]);
  });

  it.each([
    ['1.2.3.4, nonsense', /entry 2 "nonsense" is not an IPv4 or IPv6 address/],
    ['10.0.0.0/33', /entry 1 "10.0.0.0\/33" needs a prefix length from 1 to 32/],
    ['2001:db8::/129', /needs a prefix length from 1 to 128/],
    ['0.0.0.0/0', /needs a prefix length from 1 to 32/],
    ['::/0', /needs a prefix length from 1 to 128/],
    ['10.0.0.0/8x', /prefix length that is not a number/],
    ['10.0.0.0/255.0.0.0', /prefix length that is not a number/],
    ['::ffff:10.0.0.0/64', /IPv4-mapped base needs a prefix from \/96/],
    ['fe80::1%eth0', /is not an IPv4 or IPv6/],
  ])('refuses %p', (spec, message) => {
    expect(() => parseCidrList(spec, 'JUMIO_CALLBACK_ALLOWED_CIDRS')).toThrow(AddressSpecError);
    expect(() => parseCidrList(spec, 'JUMIO_CALLBACK_ALLOWED_CIDRS')).toThrow(
      /^JUMIO_CALLBACK_ALLOWED_CIDRS: entry \d+ "[^"]+" /,
    );
    expect(() => parseCidrList(spec, 'JUMIO_CALLBACK_ALLOWED_CIDRS')).toThrow(message);
  });
});

describe('CidrAllowlist', () => {
  const list = CidrAllowlist.fromSpec('34.202.241.227, 10.1.0.0/16, 2001:db8:1::/48, fd00::7');

  it.each([
    ['34.202.241.227', true],
    ['34.202.241.228', false],
    ['::ffff:34.202.241.227', true],
    ['::ffff:22ca:f1e3', true], // the same address, hex-spelled
    ['10.1.255.9', true],
    ['10.2.0.1', false],
    ['::ffff:10.1.0.1', true],
    ['2001:db8:1:ffff::1', true],
    ['2001:DB8:1::', true],
    ['2001:db8:2::1', false],
    ['fd00::7', true],
    ['fd00:0:0:0:0:0:0:7', true],
    ['fd00::8', false],
    ['::1', false],
    ['127.0.0.1', false],
  ])('%s -> %p', (address, allowed) => {
    expect(list.allows(address)).toBe(allowed);
  });

  it.each([undefined, '', 'garbage', '34.202.241.227, 1.1.1.1', 'fd00::7%eth0', ' 10.1.0.1'])(
    'refuses %p',
    (address) => {
      expect(list.allows(address)).toBe(false);
    },
  );

  it('allows nothing when empty, and the loopback default allows both families', () => {
    expect(new CidrAllowlist([]).allows('127.0.0.1')).toBe(false);
    const loop = new CidrAllowlist(LOOPBACK_CIDRS);
    expect(loop.allows('127.0.0.1')).toBe(true);
    expect(loop.allows('::ffff:127.0.0.1')).toBe(true);
    expect(loop.allows('127.9.9.9')).toBe(true);
    expect(loop.allows('::1')).toBe(true);
    expect(loop.allows('::2')).toBe(false);
    expect(loop.entries).toEqual(['127.0.0.0/8', '::1/128']);
  });

  it('refuses invalid entries at construction', () => {
    expect(() => new CidrAllowlist(['1.2.3.4', 'x'])).toThrow(/entry 2 "x"/);
  });
});

describe('parseTrustProxy', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['  ', false],
    ['false', false],
    ['FALSE', false],
    ['0', false],
    [' , ', false],
    ['1', 1],
    [' 2 ', 2],
    ['10.0.0.0/8, 192.168.1.7', ['10.0.0.0/8', '192.168.1.7/32']],
    ['loopback', ['127.0.0.0/8', '::1/128']],
  ])('%p -> %p', (spec, value) => {
    expect(parseTrustProxy(spec)).toEqual(value);
  });

  it('refuses true, which would believe the client-written left-most entry', () => {
    expect(() => parseTrustProxy('true')).toThrow(/left-most X-Forwarded-For/);
    expect(() => parseTrustProxy('True')).toThrow(AddressSpecError);
  });

  it.each(['17', '-1', '1.5', '10.0.0.0/8, bogus', 'yes'])('refuses %p', (spec) => {
    expect(() => parseTrustProxy(spec)).toThrow(/^TRUST_PROXY/);
  });

  it('produces values Express accepts', () => {
    for (const spec of ['false', '1', '10.0.0.0/8, ::1, ::ffff:10.0.0.0/104, uniquelocal']) {
      const app = express();
      expect(() => app.set('trust proxy', parseTrustProxy(spec))).not.toThrow();
      expect(typeof app.get('trust proxy fn')).toBe('function');
    }
  });
});

describe('callbackOrigin', () => {
  it('passes allowed sources and refuses others with 403, after onRefused', async () => {
    const refused: RefusedCallback[] = [];
    const build = (spec: string) => {
      const app = express();
      app.post(
        '/webhooks/jumio',
        callbackOrigin({
          allowlist: CidrAllowlist.fromSpec(spec),
          onRefused: (e) => void refused.push(e),
          logger: recordingLogger(),
        }),
        (_req, res) => {
          res.send('ok');
        },
      );
      return app;
    };
    await request(build('127.0.0.1')).post('/webhooks/jumio').expect(200, 'ok');
    expect(refused).toEqual([]);
    const res = await request(build(JUMIO_CALLBACK_IPS.US.join(',')))
      .post('/webhooks/jumio?a=b')
      .type('form')
      .send({ jumioIdScanReference: 'x' })
      .expect(403);
    expect(res.body).toEqual({
      error: { code: 'forbidden', message: 'callback source not allowed' },
    });
    expect(refused).toEqual([
      {
        sourceAddress: '127.0.0.1',
        socketAddress: expect.stringMatching(/127\.0\.0\.1$/),
        method: 'POST',
        path: '/webhooks/jumio',
      },
    ]);
  });

  it('still refuses when onRefused fails, and logs that', async () => {
    const calls: { level: string; obj: object; msg?: string }[] = [];
    const app = express();
    app.use((_req, res, next) => {
      res.locals.requestId = 'rid-9';
      next();
    });
    app.post(
      '/cb',
      callbackOrigin({
        allowlist: new CidrAllowlist(['192.0.2.1']),
        onRefused: () => Promise.reject(new Error('ledger down')),
        logger: recordingLogger(calls),
      }),
      (_req, res) => {
        res.send('ok');
      },
    );
    await request(app).post('/cb').expect(403);
    expect(calls).toEqual([
      {
        level: 'error',
        msg: 'recording a refused callback failed',
        obj: expect.objectContaining({ sourceAddress: '127.0.0.1', requestId: 'rid-9' }),
      },
    ]);
  });
});

describe('resolveCallbackHosts', () => {
  const table: Record<string, string[]> = {
    'callback.jumio.com': ['52.52.51.178', '34.202.241.227'],
    'callback.lon.jumio.com': ['34.253.41.236', '2a05:d018::1'],
    'poisoned.example': ['10.0.0.5'],
    'mapped.example': ['::ffff:52.52.51.178'],
    'empty.example': [],
  };
  const lookup: LookupAll = async (hostname, options) => {
    expect(options).toEqual({ all: true });
    const found = table[hostname];
    if (!found) throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    return found.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  it('resolves every name and returns the sorted, deduplicated addresses', async () => {
    await expect(
      resolveCallbackHosts(
        ['callback.jumio.com', 'callback.lon.jumio.com', 'mapped.example'],
        lookup,
      ),
    ).resolves.toEqual(['34.202.241.227', '34.253.41.236', '52.52.51.178', '2a05:d018::1']);
  });

  it('result feeds straight into an allowlist', async () => {
    const ips = await resolveCallbackHosts([JUMIO_CALLBACK_HOSTS.US], lookup);
    const list = new CidrAllowlist(ips);
    expect(list.allows('34.202.241.227')).toBe(true);
    expect(list.allows('34.226.103.119')).toBe(false);
  });

  it('fails as a whole when a name does not resolve, resolves to nothing or to a private address', async () => {
    await expect(
      resolveCallbackHosts(['callback.jumio.com', 'gone.example'], lookup),
    ).rejects.toThrow('cannot resolve gone.example (ENOTFOUND)');
    await expect(resolveCallbackHosts(['empty.example'], lookup)).rejects.toThrow(
      'empty.example resolved to no address',
    );
    await expect(resolveCallbackHosts(['poisoned.example'], lookup)).rejects.toThrow(
      'poisoned.example resolved to a non-public address 10.0.0.5',
    );
  });
});
