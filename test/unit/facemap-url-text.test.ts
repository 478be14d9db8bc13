import { isFacemapUrlOf } from '../../src/core/jumio';
import { parseIdVerificationCallback } from '../../src/core/enrollment/callback';

/**
 * Found by the resilience fuzz: a callback whose facemap URL carried a NUL was answered 500
 * (PostgreSQL text cannot hold one), so Jumio would retry it forever; and a Retrieval link
 * with a line break passed the origin check, since the URL parser drops line breaks.
 */
const REF = '3a6b3a1e-8f4b-4b8e-9a52-4b2f0e8c1d7a';
const GOOD = `https://netverify.com/api/netverify/v2/scans/${REF}/data/facemap`;

describe('facemap URL text', () => {
  const facemapOf = (facemap: string) =>
    parseIdVerificationCallback(
      { callBackType: 'NETVERIFYID', jumioIdScanReference: REF, facemap },
      'customerId',
    ).facemapUrl;

  it('keeps a printable ASCII URL from a callback and drops anything else', () => {
    expect(facemapOf(GOOD)).toBe(GOOD);
    for (const bad of [
      `${GOOD}\u0000`,
      `${GOOD}\r\nHost: evil`,
      GOOD.replace('/data', '/da\tta'),
      `${GOOD} `,
      GOOD.replace('scans', 'scäns'),
      `${GOOD}${'a'.repeat(2048)}`,
    ]) {
      expect(facemapOf(bad)).toBeNull();
    }
  });

  it('refuses a facemap link with controls or spaces even where the URL parser would not', () => {
    expect(isFacemapUrlOf(GOOD, REF)).toBe(true);
    expect(isFacemapUrlOf(GOOD.replace('/data', '/da\nta'), REF)).toBe(false);
    expect(isFacemapUrlOf(GOOD.replace('/data', '/da\tta'), REF)).toBe(false);
    expect(isFacemapUrlOf(`${GOOD}\u0000`, REF)).toBe(false);
  });
});
