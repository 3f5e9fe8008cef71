// Longer fuzzing of the LTX decoders than the test suite does.
//
//   node dist/scripts/fuzz-ltx.js [SECONDS=60] [SEED]
//
// Prints progress every 10 s and the totals; on a contract violation prints the seed and the input
// (hex) and exits 1. Re-run with the printed seed to reproduce.

import { fuzzLtxDecoders, FuzzFailure } from "../test/ltx/ltx-fuzzer.js";

async function main(): Promise<number> {
  const seconds = Number(process.argv[2] ?? "60");
  if (!Number.isFinite(seconds) || seconds <= 0) {
    process.stderr.write("usage: node dist/scripts/fuzz-ltx.js [SECONDS] [SEED]\n");
    return 2;
  }
  let seed = process.argv[3] === undefined ? (Math.random() * 2 ** 32) >>> 0 : Number(process.argv[3]) >>> 0;
  const end = Date.now() + seconds * 1000;
  const totals = { inputs: 0, decoded: 0, rejected: {} as Record<string, number> };
  process.stdout.write(`fuzzing LTX decoders for ${seconds} s, first seed ${seed}\n`);
  while (Date.now() < end) {
    // Rounds of up to 10 s, each from its own seed, so that a failure replays quickly.
    const stats = await fuzzLtxDecoders(seed, Math.min(end, Date.now() + 10_000));
    totals.inputs += stats.inputs;
    totals.decoded += stats.decoded;
    for (const [code, n] of Object.entries(stats.rejected))
      totals.rejected[code] = (totals.rejected[code] ?? 0) + n;
    process.stdout.write(`seed ${seed}: ${stats.inputs} inputs, ${stats.decoded} decoded\n`);
    seed = (seed + 0x9e3779b9) >>> 0;
  }
  process.stdout.write(
    `total: ${totals.inputs} inputs, ${totals.decoded} decoded, rejected ${JSON.stringify(totals.rejected)}\n`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof FuzzFailure) process.stderr.write(`FAILURE: ${err.message}\n`);
    else
      process.stderr.write(`fuzz-ltx: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
