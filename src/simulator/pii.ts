import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * Fake but realistic personal data for one scan. It exists so that the vault's leakage
 * tests have something to catch: every value is deterministic per scan reference, and a
 * test can override any of them with sentinel values through `POST /__sim/scans {pii}`.
 */
export interface ScanPii {
  idFirstName: string;
  idLastName: string;
  idDob: string;
  idExpiry: string;
  idNumber: string;
  idType: string;
  idSubtype: string;
  idCountry: string;
  idUsState: string;
  personalNumber: string;
  idAddress: Record<string, string>;
  clientIp: string;
  idScanImage: string;
  idScanImageFace: string;
  idScanImageBackside: string;
  livenessImages: string[];
}

export const piiOverrideSchema = z.strictObject({
  idFirstName: z.string().optional(),
  idLastName: z.string().optional(),
  idDob: z.string().optional(),
  idExpiry: z.string().optional(),
  idNumber: z.string().optional(),
  idType: z.string().optional(),
  idSubtype: z.string().optional(),
  idCountry: z.string().optional(),
  idUsState: z.string().optional(),
  personalNumber: z.string().optional(),
  idAddress: z.record(z.string(), z.string()).optional(),
  clientIp: z.string().optional(),
  idScanImage: z.string().optional(),
  idScanImageFace: z.string().optional(),
  idScanImageBackside: z.string().optional(),
  livenessImages: z.array(z.string()).optional(),
});
export type PiiOverride = z.infer<typeof piiOverrideSchema>;

const FIRST_NAMES = ['AMELIA', 'NOAH', 'SOFIA', 'LIAM', 'CHLOE', 'MATEO', 'HANNA', 'OSCAR', 'LENA'];
const LAST_NAMES = ['HARTMANN', 'OKAFOR', 'LINDQVIST', 'MORENO', 'TANAKA', 'KOWALSKI', 'DUBOIS'];
const CITIES: ReadonlyArray<readonly [string, string, string]> = [
  ['SACRAMENTO', 'CA', '95814'],
  ['AUSTIN', 'TX', '78701'],
  ['PORTLAND', 'OR', '97205'],
  ['DENVER', 'CO', '80202'],
  ['BOSTON', 'MA', '02108'],
];
const STREETS = ['MAPLE', 'OAK', 'HARBOR', 'CEDAR', 'LINCOLN', 'MILL'];
const ID_TYPES: ReadonlyArray<readonly [string, string]> = [
  ['PASSPORT', 'PASSPORT'],
  ['DRIVING_LICENSE', 'REGULAR_DRIVING_LICENSE'],
  ['ID_CARD', 'NATIONAL_ID'],
];

/** A deterministic byte source seeded by the scan reference. */
function seeded(seed: string): (n: number) => number {
  let counter = 0;
  let pool: Buffer = Buffer.alloc(0);
  let offset = 0;
  return (n: number) => {
    if (offset + 4 > pool.length) {
      pool = createHash('sha256').update(`${seed}:${counter++}`).digest();
      offset = 0;
    }
    const value = pool.readUInt32BE(offset);
    offset += 4;
    return value % n;
  };
}

function pick<T>(list: readonly T[], next: (n: number) => number): T {
  const item = list[next(list.length)];
  if (item === undefined) throw new Error('empty list');
  return item;
}

function digits(count: number, next: (n: number) => number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(next(10));
  return out;
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** Image URLs point at the simulator itself so they are recognisably "Jumio URLs". */
export function scanPii(scanReference: string, baseUrl: string, override?: PiiOverride): ScanPii {
  const next = seeded(scanReference);
  const [city, state, zip] = pick(CITIES, next);
  const [idType, idSubtype] = pick(ID_TYPES, next);
  const images = `${baseUrl}/api/netverify/v2/scans/${scanReference}/images`;
  const generated: ScanPii = {
    idFirstName: pick(FIRST_NAMES, next),
    idLastName: pick(LAST_NAMES, next),
    idDob: `${1950 + next(54)}-${pad(1 + next(12))}-${pad(1 + next(28))}`,
    idExpiry: `${2027 + next(8)}-${pad(1 + next(12))}-${pad(1 + next(28))}`,
    idNumber: `${String.fromCharCode(65 + next(26))}${digits(8, next)}`,
    idType,
    idSubtype,
    idCountry: 'USA',
    idUsState: state,
    personalNumber: `${digits(3, next)}-${digits(2, next)}-${digits(4, next)}`,
    idAddress: {
      country: 'USA',
      stateCode: `US-${state}`,
      city,
      zip,
      streetName: pick(STREETS, next),
      streetSuffix: 'ST',
      streetNumber: String(1 + next(9999)),
    },
    // TEST-NET-3 (RFC 5737): realistic shape, never a real person's address.
    clientIp: `203.0.113.${1 + next(254)}`,
    idScanImage: `${images}/front`,
    idScanImageFace: `${images}/face`,
    idScanImageBackside: `${images}/back`,
    livenessImages: [1, 2, 3, 4].map((i) => `${images}/liveness/${i}`),
  };
  return { ...generated, ...stripUndefined(override ?? {}) };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
