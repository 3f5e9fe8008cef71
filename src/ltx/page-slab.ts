// Memory for decoded pages, handed out in page-sized views of larger slabs. Allocating a separate
// ArrayBuffer per page costs more than decompressing the page (each is zero-filled outside the heap
// and counted against GC); one 256 KiB slab serves 64 pages of 4 KiB.
//
// Ownership: every view is handed out once and never written by the allocator again, so it belongs to
// whoever received it. A view keeps its whole slab alive; callers keeping a few pages of a large file
// for a long time should copy them.

const SLAB_BYTES = 256 * 1024;

export class PageSlab {
  readonly #pageSize: number;
  #slab: Uint8Array = new Uint8Array(0);
  #used = 0;

  constructor(pageSize: number) {
    this.#pageSize = pageSize;
  }

  /** A zeroed, never-before-handed-out page. */
  next(): Uint8Array {
    if (this.#used + this.#pageSize > this.#slab.length) {
      this.#slab = new Uint8Array(Math.max(SLAB_BYTES, this.#pageSize));
      this.#used = 0;
    }
    const page = this.#slab.subarray(this.#used, this.#used + this.#pageSize);
    this.#used += this.#pageSize;
    return page;
  }
}
