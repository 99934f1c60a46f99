// A page of a listing, bounded by bytes as well as by count: a page ends
// early rather than grow past PAGE_MAX_BYTES, so that every reply stays under
// the 4 MiB that stock gRPC clients accept; its page token continues it. Rows
// are read a few at a time at first, so that a listing of very large jobs
// never holds many of them in memory at once.

/** The most a page of ListJobs or ListJobEvents holds (one item always fits). */
const PAGE_MAX_BYTES = 2 * 1024 * 1024;
/** Rows read first, before the size of what is listed is known. */
const FIRST_READ = 10;

export interface Page<T> {
  readonly items: T[];
  /** Whether items are left after this page (its last item is where the next page starts). */
  readonly more: boolean;
}

/**
 * Up to `size` items from `read(after, limit)` (items after `after`, in order),
 * as many as fit in PAGE_MAX_BYTES by `bytesOf`.
 */
export async function readPage<T, C>(
  size: number,
  after: C | null,
  read: (after: C | null, limit: number) => Promise<T[]>,
  cursorOf: (item: T) => C,
  bytesOf: (item: T) => number,
): Promise<Page<T>> {
  const items: T[] = [];
  let bytes = 0;
  let largest = 1;
  let limit = Math.min(size + 1, FIRST_READ);
  for (;;) {
    const rows = await read(after, limit);
    for (const row of rows) {
      const rowBytes = bytesOf(row);
      if (items.length === size || (items.length > 0 && bytes + rowBytes > PAGE_MAX_BYTES)) return { items, more: true };
      items.push(row);
      bytes += rowBytes;
      largest = Math.max(largest, rowBytes);
    }
    if (rows.length < limit) return { items, more: false };
    after = cursorOf(rows[rows.length - 1]);
    // As many as could still fit, judged by the largest seen so far (and one to learn whether more follow).
    limit = Math.max(1, Math.min(size - items.length + 1, Math.floor((PAGE_MAX_BYTES - bytes) / largest) + 1));
  }
}
