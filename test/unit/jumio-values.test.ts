import { z } from 'zod';
import {
  authenticationResultSchema,
  describeIssues,
  identityVerificationSchema,
  initiateAuthenticationInputSchema,
  jsonEncoded,
  jumioTimestampSchema,
  makeInitiateAuthenticationInputSchema,
  oneOrMany,
  parseJumioTimestamp,
  parseValidity,
  scanStatusSchema,
  similaritySchema,
  validitySchema,
  verificationStatusSchema,
} from '../../src/core/jumio';

describe('validity', () => {
  it.each([
    ['TRUE', true],
    ['true', true],
    ['True', true],
    [' tRuE ', true],
    [true, true],
    ['FALSE', false],
    ['false', false],
    ['False', false],
    [false, false],
  ])('%p -> %p', (input, expected) => {
    expect(parseValidity(input)).toBe(expected);
  });

  it.each([['yes'], ['1'], [1], [0], [''], [null], [undefined], [{}], ['TRUEISH']])(
    'refuses %p instead of guessing',
    (input) => {
      expect(validitySchema.safeParse(input).success).toBe(false);
    },
  );
});

describe('timestamps', () => {
  it.each([
    ['2024-03-05T07:08:09Z', '2024-03-05T07:08:09.000Z'],
    ['2024-03-05T07:08:09.1Z', '2024-03-05T07:08:09.100Z'],
    ['2024-03-05T07:08:09.12Z', '2024-03-05T07:08:09.120Z'],
    ['2024-03-05T07:08:09.123Z', '2024-03-05T07:08:09.123Z'],
    // Without Z: the authentication retrieval sample. UTC, not local time.
    ['2024-03-05T07:08:09', '2024-03-05T07:08:09.000Z'],
    ['2024-03-05T07:08:09.5', '2024-03-05T07:08:09.500Z'],
    ['2024-03-05T07:08:09.45', '2024-03-05T07:08:09.450Z'],
    ['2024-03-05T23:59:59.999', '2024-03-05T23:59:59.999Z'],
  ])('%s is %s', (input, iso) => {
    const date = parseJumioTimestamp(input);
    expect(date).toBeInstanceOf(Date);
    expect(date?.toISOString()).toBe(iso);
    expect(jumioTimestampSchema.parse(input).toISOString()).toBe(iso);
  });

  it('does not depend on the local time zone', () => {
    const previous = process.env.TZ;
    process.env.TZ = 'America/Los_Angeles';
    try {
      expect(parseJumioTimestamp('2024-07-01T00:00:00')?.getTime()).toBe(
        Date.UTC(2024, 6, 1, 0, 0, 0),
      );
    } finally {
      if (previous === undefined) delete process.env.TZ;
      else process.env.TZ = previous;
    }
  });

  it.each([
    ['2024-03-05T07:08:09.1234Z'],
    ['2024-03-05 07:08:09Z'],
    ['2024-03-05'],
    ['2024-02-30T00:00:00Z'],
    ['2024-13-01T00:00:00Z'],
    ['2024-03-05T24:00:00Z'],
    ['2024-03-05T07:08:09+02:00'],
    ['not a date'],
    [''],
  ])('refuses %s', (input) => {
    expect(parseJumioTimestamp(input)).toBeNull();
    expect(jumioTimestampSchema.safeParse(input).success).toBe(false);
  });
});

describe('lists', () => {
  const item = z.object({ classifier: z.string(), href: z.string() });
  const schema = oneOrMany(item);

  it('wraps a single object into a list', () => {
    expect(schema.parse({ classifier: 'facemap', href: 'h', extra: 'dropped' })).toEqual([
      { classifier: 'facemap', href: 'h' },
    ]);
  });

  it('keeps a list as it is', () => {
    expect(
      schema.parse([
        { classifier: 'facemap', href: 'a' },
        { classifier: 'other', href: 'b' },
      ]),
    ).toEqual([
      { classifier: 'facemap', href: 'a' },
      { classifier: 'other', href: 'b' },
    ]);
  });

  it('still validates the items', () => {
    expect(schema.safeParse({ classifier: 'facemap' }).success).toBe(false);
    expect(schema.safeParse([{ classifier: 'facemap', href: 1 }]).success).toBe(false);
  });
});

describe('enums', () => {
  it('accepts every verification status and tolerates case', () => {
    for (const s of [
      'APPROVED_VERIFIED',
      'DENIED_FRAUD',
      'DENIED_UNSUPPORTED_ID_TYPE',
      'DENIED_UNSUPPORTED_ID_COUNTRY',
      'ERROR_NOT_READABLE_ID',
      'NO_ID_UPLOADED',
    ]) {
      expect(verificationStatusSchema.parse(s)).toBe(s);
    }
    expect(verificationStatusSchema.parse('approved_verified')).toBe('APPROVED_VERIFIED');
    expect(verificationStatusSchema.safeParse('APPROVED').success).toBe(false);
  });

  it('similarity, scan status and authentication result', () => {
    expect(similaritySchema.parse('match')).toBe('MATCH');
    expect(similaritySchema.parse('NOT_POSSIBLE')).toBe('NOT_POSSIBLE');
    expect(similaritySchema.safeParse('MAYBE').success).toBe(false);
    expect(scanStatusSchema.parse('DONE')).toBe('DONE');
    expect(scanStatusSchema.safeParse('SUCCESS').success).toBe(false);
    expect(authenticationResultSchema.parse('EXPIRED')).toBe('EXPIRED');
    expect(authenticationResultSchema.safeParse('DONE').success).toBe(false);
  });
});

describe('identityVerification', () => {
  it('parses the callback form: a JSON string with a string validity', () => {
    expect(
      identityVerificationSchema.parse('{"similarity":"MATCH","validity":"TRUE","reason":"x"}'),
    ).toEqual({ similarity: 'MATCH', validity: true, reason: 'x' });
  });

  it('parses the Retrieval form: an object with a boolean validity', () => {
    expect(identityVerificationSchema.parse({ similarity: 'NO_MATCH', validity: false })).toEqual({
      similarity: 'NO_MATCH',
      validity: false,
    });
  });

  it('refuses broken JSON and unknown validity', () => {
    expect(identityVerificationSchema.safeParse('{"similarity":').success).toBe(false);
    expect(
      identityVerificationSchema.safeParse({ similarity: 'MATCH', validity: 'maybe' }).success,
    ).toBe(false);
  });

  it('jsonEncoded passes objects through and parses strings', () => {
    const s = jsonEncoded(z.object({ a: z.number() }));
    expect(s.parse({ a: 1 })).toEqual({ a: 1 });
    expect(s.parse('{"a":2}')).toEqual({ a: 2 });
  });
});

describe('initiate input rules', () => {
  const valid = {
    facemap: new Uint8Array([1, 2, 3]),
    enrollmentTransactionReference: '3f1c6a3e-0d1b-4a55-8f1e-9a1a2b3c4d5e',
  };

  it('accepts a minimal and a full input', () => {
    expect(initiateAuthenticationInputSchema.safeParse(valid).success).toBe(true);
    expect(
      initiateAuthenticationInputSchema.safeParse({
        ...valid,
        userReference: 'user_1234',
        callbackUrl: 'https://vault.example.com/callback',
        successUrl: 'https://app.example.com/ok?x=1',
        errorUrl: 'https://app.example.com/error',
        locale: 'pt-BR',
        tokenLifetimeInMinutes: 5,
      }).success,
    ).toBe(true);
  });

  it.each([
    ['empty facemap', { facemap: new Uint8Array(0) }],
    ['reference over 36', { enrollmentTransactionReference: 'x'.repeat(37) }],
    ['empty reference', { enrollmentTransactionReference: '' }],
    ['userReference over 100', { userReference: 'u'.repeat(101) }],
    ['email as userReference', { userReference: 'jane.doe@example.com' }],
    ['http callback', { callbackUrl: 'http://vault.example.com/cb' }],
    ['callback over 255', { callbackUrl: `https://e.com/${'a'.repeat(250)}` }],
    ['non-ASCII URL', { errorUrl: 'https://bücher.example/err' }],
    ['successUrl over 2047', { successUrl: `https://e.com/${'a'.repeat(2040)}` }],
    ['unknown locale', { locale: 'xx' }],
    ['token lifetime 4', { tokenLifetimeInMinutes: 4 }],
    ['token lifetime 86401', { tokenLifetimeInMinutes: 86401 }],
    ['fractional token lifetime', { tokenLifetimeInMinutes: 5.5 }],
  ])('refuses %s', (_name, patch) => {
    expect(initiateAuthenticationInputSchema.safeParse({ ...valid, ...patch }).success).toBe(false);
  });

  it('allows plain-http loopback URLs only when asked to (the loopback simulator)', () => {
    const simulator = makeInitiateAuthenticationInputSchema({ allowLoopbackHttpUrls: true });
    for (const url of ['http://127.0.0.1:3000/cb', 'http://localhost/cb', 'http://[::1]:8/cb']) {
      expect(simulator.safeParse({ ...valid, callbackUrl: url }).success).toBe(true);
      expect(
        initiateAuthenticationInputSchema.safeParse({ ...valid, callbackUrl: url }).success,
      ).toBe(false);
    }
    expect(
      simulator.safeParse({ ...valid, callbackUrl: 'http://vault.example.com/cb' }).success,
    ).toBe(false);
  });

  it('describes problems without echoing the values', () => {
    const result = initiateAuthenticationInputSchema.safeParse({
      ...valid,
      userReference: 'jane.doe@example.com',
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    const text = describeIssues(result.error).join('\n');
    expect(text).toContain('userReference');
    expect(text).not.toContain('jane.doe');
  });
});
