// Offsets → 1-based line:column in a text. Issues are reported against the file as the user wrote it,
// so this indexes the original text, not the text after `$VAR` expansion.

export interface TextPosition {
  line: number;
  column: number;
}

export class LineIndex {
  /** Offsets at which each line starts; always begins with 0. */
  readonly #lineStarts: number[] = [0];
  readonly #length: number;

  constructor(text: string) {
    for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) this.#lineStarts.push(i + 1);
    this.#length = text.length;
  }

  /** Offsets past the end clamp to the end, so a problem "at end of file" still gets a place. */
  position(offset: number): TextPosition {
    const clamped = Math.max(0, Math.min(offset, this.#length));
    let lo = 0;
    let hi = this.#lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.#lineStarts[mid] <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: clamped - this.#lineStarts[lo] + 1 };
  }
}
