import { VaultError } from './errors';
import type { BlobStore } from './ports';

/** A blob is recorded in a store this vault is not configured with: it cannot be reached. */
export class BlobStoreUnavailableError extends VaultError {
  constructor(
    readonly location: string,
    current: string,
  ) {
    super(
      'blob_store_unavailable',
      `the blob is held in ${location}, but this vault is configured with ${current}`,
    );
  }
}

/**
 * The blob stores this vault can reach: the configured one, where new blobs go. A blob is
 * read and destroyed only through the store its ledger row names, never by assuming it
 * lives in whatever store is configured today.
 */
export class BlobStores {
  constructor(readonly current: BlobStore) {}

  /**
   * The store holding a recorded blob. Rows from before the location was kept (null) were
   * written to the store configured then, which is assumed to be the current one.
   */
  holding(location: string | null): BlobStore {
    if (location === null || location === this.current.location) return this.current;
    throw new BlobStoreUnavailableError(location, this.current.location);
  }
}
