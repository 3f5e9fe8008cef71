// Go duration strings ("10s", "1m30s", "500ms", "1.5h", "-2us") → milliseconds, with Go's
// `time.ParseDuration` rules: an optional sign, then one or more <decimal number><unit> pairs, units
// ns, us (µs, μs), ms, s, m, h; "0" alone needs no unit. LiteFS's config holds Go durations, so the same
// text must mean the same time here.
//
// Arithmetic is done in integer nanoseconds with BigInt so that "1.1s" is exactly 1100 ms (binary
// floating point would give 1100.0000000000002), and the range is Go's: |d| ≤ 2^63-1 ns (~292 years).

export type DurationParseResult = { ok: true; ms: number } | { ok: false; reason: string };

const NS_PER_UNIT: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["µs", 1_000n], // U+00B5 micro sign
  ["μs", 1_000n], // U+03BC Greek small letter mu
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

const INT64_MAX = (1n << 63n) - 1n;
const NS_PER_MS = 1_000_000n;

/** One `<number><unit>` pair: digits, optional fraction, then the unit (letters or µ/μ). */
const PAIR = /^(\d*)(?:\.(\d*))?([^\d.]*)/;

export function parseDuration(text: string): DurationParseResult {
  let rest = text;
  let negative = false;
  if (rest.startsWith("-") || rest.startsWith("+")) {
    negative = rest.startsWith("-");
    rest = rest.slice(1);
  }
  if (rest === "0") return { ok: true, ms: 0 };
  if (rest === "") return { ok: false, reason: "empty duration" };

  let totalNs = 0n;
  while (rest !== "") {
    const m = PAIR.exec(rest);
    // PAIR always matches (every part is optional); an empty match means a character it cannot use.
    const [whole, intDigits, fracDigits = "", unit] = m!;
    if (intDigits === "" && fracDigits === "") return { ok: false, reason: `expected a number at "${rest}"` };
    if (unit === "") return { ok: false, reason: `missing unit after "${whole}"` };
    const unitNs = NS_PER_UNIT.get(unit);
    if (unitNs === undefined)
      return { ok: false, reason: `unknown unit "${unit}" (use ns, us, ms, s, m or h)` };

    let pairNs = BigInt(intDigits === "" ? "0" : intDigits) * unitNs;
    if (fracDigits !== "") {
      // The fraction contributes fracDigits / 10^len units; Go truncates below one nanosecond.
      const scale = 10n ** BigInt(fracDigits.length);
      pairNs += (BigInt(fracDigits) * unitNs) / scale;
    }
    totalNs += pairNs;
    if (totalNs > INT64_MAX) return { ok: false, reason: "out of range (more than ~292 years)" };
    rest = rest.slice(whole.length);
  }

  // Whole milliseconds stay exact; sub-millisecond parts become a fraction (e.g. "1500us" → 1.5).
  const wholeMs = totalNs / NS_PER_MS;
  const ms = Number(wholeMs) + Number(totalNs % NS_PER_MS) / 1e6;
  return { ok: true, ms: negative && ms !== 0 ? -ms : ms };
}
