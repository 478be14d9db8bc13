import { mkdtemp, readdir, rm, writeFile, mkdir, symlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { FsBlobStore } from '../../src/adapters/blobs/fs-blob-store';
import { DependencyError, InvalidBlobKeyError } from '../../src/core/errors';
import { blobStoreContract, TRAVERSAL_KEYS } from './blob-store.contract';

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'vault-blobs-'));
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map((e) => e.split(path.sep).join('/')).sort();
}

blobStoreContract('filesystem', async () => {
  const root = await tempDir();
  return {
    store: new FsBlobStore(path.join(root, 'blobs')),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

describe('FsBlobStore specifics', () => {
  let base: string;
  let root: string;
  let store: FsBlobStore;

  beforeEach(async () => {
    base = await tempDir();
    // The root sits one level down so an escape would land in `base`, where we can see it.
    root = path.join(base, 'root');
    store = new FsBlobStore(root);
  });

  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('writes nothing outside the root for any refused key', async () => {
    for (const key of TRAVERSAL_KEYS) {
      await expect(store.put(key, Buffer.from('x'))).rejects.toBeInstanceOf(InvalidBlobKeyError);
    }
    expect(await tree(base)).toEqual([]);
  });

  it('never shows temp files (e.g. left by a crash) in list', async () => {
    await store.put('a/b', Buffer.from('x'));
    // What a crash between write and rename leaves behind.
    await writeFile(path.join(root, 'a', 'c@tmp-0123456789abcdef'), 'partial');
    await writeFile(path.join(root, 'a', 'stray-file'), 'not an object');
    expect((await store.list('')).keys).toEqual(['a/b']);
    expect(await store.exists('a/c')).toBe(false);
  });

  it('leaves no temp files after writes, and removes emptied directories on delete', async () => {
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.put('x/y/z', Buffer.from(`body ${i}`))),
    );
    expect(await tree(root)).toEqual(['x', 'x/y', 'x/y/z@blob']);
    await store.delete('x/y/z');
    expect(await tree(root)).toEqual([]);
  });

  it('creates objects readable only by the owner', async () => {
    await store.put('secret', Buffer.from('ciphertext'));
    const mode = (await stat(path.join(root, 'secret@blob'))).mode & 0o777;
    expect(mode & 0o077).toBe(0);
  });

  it('does not follow a symlink planted in place of an object', async () => {
    const outside = path.join(base, 'outside');
    await writeFile(outside, 'not yours');
    await mkdir(root, { recursive: true });
    await symlink(outside, path.join(root, 'link@blob'));
    await expect(store.get('link')).rejects.toBeInstanceOf(DependencyError);
    expect(await store.exists('link')).toBe(false);
    expect((await store.list('')).keys).toEqual([]);
  });

  it('refuses a malformed cursor', async () => {
    await expect(
      store.list('', { cursor: Buffer.from('../x').toString('base64url') }),
    ).rejects.toBeInstanceOf(InvalidBlobKeyError);
  });

  it('lists an empty result before anything was written', async () => {
    expect(await store.list('')).toEqual({ keys: [] });
  });

  it('ping fails with DependencyError when the root is not a usable directory', async () => {
    await writeFile(root, 'a file, not a directory');
    await expect(store.ping()).rejects.toBeInstanceOf(DependencyError);
  });
});
