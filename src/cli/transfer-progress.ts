// A progress bar on stderr for `litefs import`/`export` of large files: redrawn in place at most
// every 200 ms when stderr is a terminal, and as a plain line every 10 % otherwise (logs, CI).

const REDRAW_MS = 200;
const BAR_WIDTH = 30;

export class TransferProgress {
  readonly #label: string;
  readonly #total: number | undefined;
  readonly #tty: boolean;
  readonly #started = Date.now();
  #done = 0;
  #lastDraw = 0;
  #lastDecile = -1;

  constructor(label: string, total: number | undefined) {
    this.#label = label;
    this.#total = total;
    this.#tty = process.stderr.isTTY === true;
  }

  add(bytes: number): void {
    this.#done += bytes;
    const now = Date.now();
    if (this.#tty) {
      if (now - this.#lastDraw >= REDRAW_MS) {
        this.#lastDraw = now;
        process.stderr.write(`\r${this.#line()}`);
      }
      return;
    }
    if (this.#total !== undefined && this.#total > 0) {
      const decile = Math.floor((this.#done / this.#total) * 10);
      if (decile !== this.#lastDecile) {
        this.#lastDecile = decile;
        process.stderr.write(`${this.#line()}\n`);
      }
    }
  }

  finish(): void {
    process.stderr.write(`${this.#tty ? "\r" : ""}${this.#line()}\n`);
  }

  #line(): string {
    const seconds = Math.max(0.001, (Date.now() - this.#started) / 1000);
    const rate = `${mib(this.#done / seconds)} MiB/s`;
    if (this.#total === undefined || this.#total === 0)
      return `${this.#label} ${mib(this.#done)} MiB ${rate}`;
    const fraction = Math.min(1, this.#done / this.#total);
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = "#".repeat(filled) + "-".repeat(BAR_WIDTH - filled);
    return `${this.#label} [${bar}] ${(fraction * 100).toFixed(1)}% ${mib(this.#done)}/${mib(this.#total)} MiB ${rate}`;
  }
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(1);
}
