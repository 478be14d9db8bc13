import {
  isValidUserReference,
  personalDataShapeOf,
  userReferenceSchema,
} from '../../src/core/enrollment/callback';

describe('the user reference rule', () => {
  it.each([
    ['a UUID', '550e8400-e29b-41d4-a716-446655440000'],
    ['an all-digit UUID', '12345678-1234-1234-1234-123456789012'],
    ['a prefixed id', 'user-123'],
    ['a zero-padded id', 'cust_00042'],
    ['a short number', '42'],
    ['a nine-digit customer number', '123456789'],
    ['an id with a long number inside', 'user-15551234567'],
    ['a namespaced id', 'crm:acct.7f3a9'],
    ['an IBAN-looking id that fails the checksum', 'DE00370400440532013000'],
    ['a Jumio-style scan reference', 'a1b2c3d4-0000-4000-8000-000000000001'],
  ])('accepts %s (%s)', (_label, value) => {
    expect(personalDataShapeOf(value)).toBeNull();
    expect(isValidUserReference(value)).toBe(true);
  });

  it.each([
    ['an email address', 'jane.doe@example.com', 'email address'],
    ['a phone number with country code, no +', '15551234567', 'phone or account number'],
    ['a ten-digit phone number', '5551234567', 'phone or account number'],
    ['a phone number with dashes', '555-123-4567', 'phone or account number'],
    ['a phone number with dots', '555.123.4567', 'phone or account number'],
    ['an international number without +', '4915123456789', 'phone or account number'],
    ['a 15-digit number', '123456789012345', 'phone or account number'],
    ['an SSN', '123-45-6789', 'national identification number'],
    ['an SSN with dots', '123.45.6789', 'national identification number'],
    ['an ISO date', '1990-05-17', 'date'],
    ['a European date', '17.05.1990', 'date'],
    ['an IBAN', 'DE89370400440532013000', 'IBAN'],
    ['a British IBAN', 'GB82WEST12345698765432', 'IBAN'],
    ['an IBAN in lower case with dashes', 'de89-3704-0044-0532-0130-00', 'IBAN'],
  ])('refuses %s (%s)', (_label, value, shape) => {
    expect(personalDataShapeOf(value)).toBe(shape);
    expect(isValidUserReference(value)).toBe(false);
    expect(userReferenceSchema.safeParse(value).success).toBe(false);
  });

  it.each([
    ['empty', ''],
    ['too long', 'a'.repeat(101)],
    ['with a space', 'user 1'],
    ['with a +', '+4915123456789'],
    ['undefined', undefined],
  ])('refuses a value outside the character rule: %s', (_label, value) => {
    expect(isValidUserReference(value)).toBe(false);
  });
});
