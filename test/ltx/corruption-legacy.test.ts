// Every single-byte change and every truncation of the early-v3 and v1 vectors is rejected (see
// corruption-check.ts).

import { test } from "node:test";
import { checkEveryMutation, checkStreamingMutations } from "./corruption-check.js";
import { readVector, VECTOR_NAMES } from "./ltx-fixtures.js";

for (const name of VECTOR_NAMES.filter((n) => !/^[0-9a-f]{16}-/.test(n))) {
  test(`corrupting ${name}: every byte change and truncation fails with an LtxError`, (t) => {
    const report = checkEveryMutation(name, readVector(name));
    t.diagnostic(
      `${report.mutations} changes; ${report.equivalentLz4} equivalent LZ4 encodings; ${JSON.stringify(report.codes)}`,
    );
  });
  test(`corrupting ${name}: the streaming decoder agrees`, async () => {
    await checkStreamingMutations(name, readVector(name));
  });
}
