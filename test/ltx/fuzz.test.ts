// A bounded fuzz run of the decoders (about 5 s); scripts/fuzz-ltx.ts runs longer. Set
// LITEFS_TEST_SEED to replay a failure.

import { test } from "node:test";
import { testSeed } from "../support/prng.js";
import { fuzzLtxDecoders } from "./ltx-fuzzer.js";

test("fuzzing the decoders: only LtxErrors, consistent results", async (t) => {
  const seed = testSeed();
  t.diagnostic(`seed ${seed}`);
  const stats = await fuzzLtxDecoders(seed, Date.now() + 5000);
  t.diagnostic(
    `${stats.inputs} inputs, ${stats.decoded} decoded, rejected ${JSON.stringify(stats.rejected)}`,
  );
});
