import { createHash, randomBytes } from 'node:crypto';

import { BlobNotFoundError, InvalidBlobKeyError } from '../../src/core/errors';
import type { BlobStore } from '../../src/core/ports';

/**
 * The acceptance suite every BlobStore adapter must pass (one suite, every provider).
 * `setup` runs before each test and must hand back an empty store of its own.
 */
export interface BlobStoreFixture {
  store: BlobStore;
  cleanup?: () => Promise<void>;
}

/**
 * Where a stand-in (an emulator) is known to fall short of the real store, each with the
 * reason. The guarantees still belong to the port: the strict cases are skipped (visibly)
 * for that run, never weakened for the real adapters.
 */
export interface KnownDeviations {
  /** Listing order is not S3's byte order when keys differ in characters below '/'. */
  listOrder?: string;
  /** An overwrite is not atomic: a concurrent reader may see a partial body. */
  atomicOverwrite?: string;
}

/** Keys that try to escape the store or smuggle unsafe bytes; all must be refused. */
export const TRAVERSAL_KEYS: readonly string[] = [
  '../x',
  '/etc/passwd',
  'a/../../b',
  'a\\b',
  'a\u0000b',
  '%2e%2e/x',
  'a//b',
  './a',
  '',
  '..',
  '.',
  'a/.',
  'a/..',
  'a/',
  '..\\..\\x',
  'C:\\Windows',
  'a\nb',
  'a%2fb',
  'e\u0301', // "é" decomposed (not NFC)
  'caf\u00e9', // NFC, but outside the allowlist
  '\uff0e\uff0e/x', // fullwidth dots
  'a/'.repeat(300) + 'b',
  'x'.repeat(600),
];

function digest(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Compares by length and digest so a failure does not dump kilobytes into the report. */
function expectSameBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect({ length: actual.byteLength, sha256: digest(actual) }).toEqual({
    length: expected.byteLength,
    sha256: digest(expected),
  });
}

function allByteValues(repeat: number): Uint8Array {
  const out = new Uint8Array(256 * repeat);
  for (let i = 0; i < out.length; i += 1) out[i] = i % 256;
  return out;
}

async function listAll(store: BlobStore, prefix: string, limit?: number): Promise<string[][]> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 1000; guard += 1) {
    const page = await store.list(prefix, {
      ...(limit === undefined ? {} : { limit }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    pages.push(page.keys);
    cursor = page.nextCursor;
    if (cursor === undefined) return pages;
  }
  throw new Error('list never ended');
}

export function blobStoreContract(
  name: string,
  setup: () => Promise<BlobStoreFixture>,
  deviations: KnownDeviations = {},
): void {
  const strictOrder = deviations.listOrder === undefined;
  const itIfOrdered = strictOrder ? it : it.skip;
  const itIfAtomic = deviations.atomicOverwrite === undefined ? it : it.skip;
  /** Exact order for real stores; the same set of keys where order is a known deviation. */
  const expectListed = (actual: string[], expected: string[]): void => {
    expect(strictOrder ? actual : [...actual].sort()).toEqual([...expected].sort());
  };

  describe(`BlobStore contract: ${name}`, () => {
    let fixture: BlobStoreFixture;
    let store: BlobStore;

    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });

    afterEach(async () => {
      await fixture.cleanup?.();
    });

    it('answers ping', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it('round-trips binary data with every byte value', async () => {
      const body = allByteValues(64);
      await store.put('enrollments/abc/facemap.v1', body);
      expectSameBytes(await store.get('enrollments/abc/facemap.v1'), body);
    });

    it('round-trips an empty body', async () => {
      await store.put('empty', new Uint8Array(0));
      expect((await store.get('empty')).byteLength).toBe(0);
      expect(await store.exists('empty')).toBe(true);
    });

    it('overwrites with a shorter body without leaving the old tail', async () => {
      const first = randomBytes(4096);
      const second = randomBytes(100);
      await store.put('k', first);
      await store.put('k', second);
      expectSameBytes(await store.get('k'), second);
    });

    it('reports existence', async () => {
      expect(await store.exists('a/b')).toBe(false);
      await store.put('a/b', randomBytes(10));
      expect(await store.exists('a/b')).toBe(true);
      // A key's parent "directory" is not itself an object.
      expect(await store.exists('a')).toBe(false);
    });

    it('states the size and modification time of an object, null when absent', async () => {
      expect(await store.stat('s/t')).toBeNull();
      const before = Date.now();
      await store.put('s/t', randomBytes(123));
      const stat = await store.stat('s/t');
      expect(stat?.size).toBe(123);
      // Second precision on S3; a generous window for clock granularity on either side.
      expect(stat!.lastModified.getTime()).toBeGreaterThan(before - 5000);
      expect(stat!.lastModified.getTime()).toBeLessThan(Date.now() + 5000);
      await store.delete('s/t');
      expect(await store.stat('s/t')).toBeNull();
    });

    it('names its location as a URL, the same for every instance on the same place', async () => {
      expect(store.location).toMatch(/^(file|s3):\/\/.+\/$/);
    });

    it('throws BlobNotFoundError for a missing key', async () => {
      await expect(store.get('missing/key')).rejects.toBeInstanceOf(BlobNotFoundError);
      await expect(store.get('missing/key')).rejects.toMatchObject({ code: 'blob_not_found' });
    });

    it('keeps a key and keys below it apart', async () => {
      const parent = randomBytes(32);
      const child = randomBytes(32);
      await store.put('a', parent);
      await store.put('a/b', child);
      expectSameBytes(await store.get('a'), parent);
      expectSameBytes(await store.get('a/b'), child);
      await store.delete('a');
      expect(await store.exists('a')).toBe(false);
      expectSameBytes(await store.get('a/b'), child);
    });

    it('deletes idempotently', async () => {
      await store.put('d/1', randomBytes(10));
      await store.put('d/2', randomBytes(10));
      await store.delete('d/1');
      await store.delete('d/1');
      await store.delete('never/written');
      expect(await store.exists('d/1')).toBe(false);
      await expect(store.get('d/1')).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await store.exists('d/2')).toBe(true);
      expect((await store.list('d/')).keys).toEqual(['d/2']);
      // The key is usable again after deletion.
      const again = randomBytes(10);
      await store.put('d/1', again);
      expectSameBytes(await store.get('d/1'), again);
    });

    describe('list', () => {
      // Chosen to trip walk-order bugs: '-' (0x2d) sorts before '/' (0x2f).
      const inside = ['p/a', 'p/a-b', 'p/a/b', 'p/a/c/d', 'p/ab', 'p/b', 'p/c=1', 'p/z.z'];
      const outside = ['p', 'pa/x', 'px', 'q/a', 'o/p/a'];

      beforeEach(async () => {
        for (const key of [...inside, ...outside]) await store.put(key, randomBytes(8));
      });

      it('returns the keys under a prefix in lexicographic order, nothing from other prefixes', async () => {
        const page = await store.list('p/');
        expectListed(page.keys, inside);
        expect(page.nextCursor).toBeUndefined();
      });

      itIfOrdered('pages with limit and cursor across several pages, in order', async () => {
        const pages = await listAll(store, 'p/', 3);
        expect(pages.map((page) => page.length)).toEqual([3, 3, 2]);
        expect(pages.flat()).toEqual([...inside].sort());
      });

      itIfOrdered('pages one key at a time', async () => {
        const pages = await listAll(store, 'p/', 1);
        expect(pages.flat()).toEqual([...inside].sort());
        expect(pages.every((page) => page.length === 1)).toBe(true);
      });

      it('pages over plain keys without gaps, repeats or other prefixes', async () => {
        const plain = Array.from({ length: 11 }, (_, i) => `pg/k${String(i).padStart(2, '0')}`);
        for (const key of plain) await store.put(key, randomBytes(8));
        await store.put('pgx', randomBytes(8));
        const pages = await listAll(store, 'pg/', 4);
        expect(pages.map((page) => page.length)).toEqual([4, 4, 3]);
        expect(pages.flat()).toEqual(plain);
      });

      it('treats the prefix as a string prefix, not only a directory', async () => {
        expectListed((await store.list('p/a')).keys, ['p/a', 'p/a-b', 'p/a/b', 'p/a/c/d', 'p/ab']);
        expectListed((await store.list('p/a/')).keys, ['p/a/b', 'p/a/c/d']);
      });

      it('lists everything with an empty prefix and nothing for an unused one', async () => {
        expectListed((await store.list('')).keys, [...inside, ...outside]);
        expect((await store.list('nothing/')).keys).toEqual([]);
      });

      it('drops deleted keys', async () => {
        await store.delete('p/a/c/d');
        await store.delete('p/b');
        expectListed(
          (await store.list('p/')).keys,
          inside.filter((k) => k !== 'p/a/c/d' && k !== 'p/b'),
        );
      });
    });

    describe('refuses unsafe keys with InvalidBlobKeyError on every operation', () => {
      const label = (key: string): string =>
        JSON.stringify(key)
          .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
          .slice(0, 40);
      const cases = TRAVERSAL_KEYS.map((key) => [label(key), key] as const);

      it.each(cases)('%s', async (_label, key) => {
        const body = randomBytes(8);
        await expect(store.put(key, body)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.get(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.exists(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.stat(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        if (key !== '' && key !== 'a/') {
          // '' lists everything and 'a/' is a fine prefix; the others are not prefixes.
          await expect(store.list(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        }
        // Nothing was written anywhere the store can see.
        expect((await store.list('')).keys).toEqual([]);
      });

      it('accepts the whole allowed charset', async () => {
        const key = 'Az09/._-=/x.y_z-1=2';
        await store.put(key, randomBytes(4));
        expect(await store.exists(key)).toBe(true);
        expect((await store.list('Az09/')).keys).toEqual([key]);
      });
    });

    describe('concurrent writers', () => {
      const SIZE = 256 * 1024;
      const distinctBodies = (count: number): Buffer[] =>
        Array.from({ length: count }, (_, i) => {
          const body = randomBytes(SIZE);
          body[0] = i; // distinct even in the unlikely case of equal random data
          return body;
        });

      itIfAtomic(
        '20 concurrent puts to one key leave exactly one of the bodies, never a mix',
        async () => {
          const bodies = distinctBodies(20);
          await Promise.all(bodies.map((body) => store.put('race', body)));
          const final = await store.get('race');
          const winner = bodies.find((b) => digest(b) === digest(final));
          expect(winner).toBeDefined();
          expectSameBytes(final, winner ?? Buffer.alloc(0));
        },
      );

      itIfAtomic('readers during concurrent overwrites only ever see a whole body', async () => {
        const initial = Buffer.alloc(SIZE, 0xff);
        const bodies = distinctBodies(20);
        const known = new Set([initial, ...bodies].map(digest));
        await store.put('race', initial);

        let writing = true;
        const seen: string[] = [];
        const reader = async (): Promise<void> => {
          while (writing) seen.push(digest(await store.get('race')));
        };
        const readers = Array.from({ length: 4 }, reader);
        await Promise.all(bodies.map((body) => store.put('race', body)));
        writing = false;
        await Promise.all(readers);

        expect(seen.length).toBeGreaterThan(0);
        expect(seen.filter((d) => !known.has(d))).toEqual([]);
      });

      it('50 concurrent puts to different keys all land', async () => {
        const entries = Array.from({ length: 50 }, (_, i) => ({
          key: `many/${String(i).padStart(2, '0')}/blob`,
          body: randomBytes(1024 + i),
        }));
        await Promise.all(entries.map(({ key, body }) => store.put(key, body)));

        const listed = (await listAll(store, 'many/', 7)).flat();
        expect(listed).toEqual(entries.map((e) => e.key).sort());
        for (const { key, body } of entries) expectSameBytes(await store.get(key), body);
      });

      it('concurrent puts and deletes under one directory lose no surviving key', async () => {
        // Deleting the last key of a directory may remove the directory while a put is
        // creating a file in it (filesystem adapter); both must still succeed.
        const keep = Array.from({ length: 20 }, (_, i) =>
          i % 2 === 0 ? `mixed/keep-${i}` : `mixed/sub/keep-${i}`,
        );
        const drop = Array.from({ length: 20 }, (_, i) => `mixed/drop-${i}`);
        for (const key of drop) await store.put(key, randomBytes(16));
        await Promise.all([
          ...keep.map((key) => store.put(key, randomBytes(16))),
          ...drop.map((key) => store.delete(key)),
        ]);
        expect((await store.list('mixed/')).keys).toEqual([...keep].sort());
      });
    });
  });
}
