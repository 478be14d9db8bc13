import { DependencyError } from '../../src/core/errors';
import { GroupCommit } from '../../src/core/group-commit';

/** A commit function whose calls are recorded and held until released. */
function heldCommits(fail: (items: number[]) => Error | undefined = () => undefined) {
  const calls: number[][] = [];
  let release!: () => void;
  let gate = new Promise<void>((r) => (release = r));
  return {
    calls,
    open() {
      release();
      gate = Promise.resolve();
    },
    async commit(items: number[]): Promise<string[]> {
      calls.push(items);
      await gate;
      const error = fail(items);
      if (error) throw error;
      return items.map((i) => `ok ${i}`);
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('GroupCommit', () => {
  it('commits what arrives during a commit together, each settling with its own result', async () => {
    const held = heldCommits();
    const group = new GroupCommit((items: number[]) => held.commit(items), {
      maxBatch: 100,
      maxQueued: 100,
    });
    const first = group.submit(0);
    await tick();
    await tick();
    const rest = [1, 2, 3, 4].map((i) => group.submit(i));
    expect(group.pending).toBe(5);
    held.open();
    expect(await Promise.all([first, ...rest])).toEqual([0, 1, 2, 3, 4].map((i) => `ok ${i}`));
    expect(held.calls).toEqual([[0], [1, 2, 3, 4]]);
    expect(group.pending).toBe(0);
  });

  it('refuses with a DependencyError (503) beyond maxQueued, and splits groups at maxBatch', async () => {
    const held = heldCommits();
    const group = new GroupCommit((items: number[]) => held.commit(items), {
      maxBatch: 2,
      maxQueued: 3,
    });
    const accepted = [1, 2, 3].map((i) => group.submit(i));
    await expect(group.submit(4)).rejects.toBeInstanceOf(DependencyError);
    held.open();
    expect(await Promise.all(accepted)).toEqual(['ok 1', 'ok 2', 'ok 3']);
    expect(held.calls).toEqual([[1, 2], [3]]);
  });

  it('retries a failed group item by item, so only the failing item fails', async () => {
    const held = heldCommits((items) => (items.includes(2) ? new Error('bad item') : undefined));
    const group = new GroupCommit((items: number[]) => held.commit(items), {
      maxBatch: 10,
      maxQueued: 10,
    });
    const results = [1, 2, 3].map((i) => group.submit(i).catch((e: Error) => e.message));
    held.open();
    expect(await Promise.all(results)).toEqual(['ok 1', 'bad item', 'ok 3']);
    expect(held.calls).toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  it('fails every item of a group at once when the database is unavailable', async () => {
    const held = heldCommits(() => new DependencyError('ledger', 'down'));
    const group = new GroupCommit((items: number[]) => held.commit(items), {
      maxBatch: 10,
      maxQueued: 10,
    });
    const results = [1, 2, 3].map((i) => group.submit(i).catch((e: unknown) => e));
    held.open();
    for (const result of await Promise.all(results)) expect(result).toBeInstanceOf(DependencyError);
    expect(held.calls).toEqual([[1, 2, 3]]);
  });
});
