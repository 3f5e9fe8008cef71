// SIGKILL the node at random moments under a write load, restart it, and check what survived
// (crash-scenario.ts), in every journal mode. Replay a failure with LITEFS_TEST_SEED=<seed printed>.
import { after, before, describe, test } from "node:test";
import { LitefsNode } from "../support/litefs-node.js";
import { testSeed } from "../support/prng.js";
import { makeTempDir, removeTempDir } from "../support/temp-dir.js";
import { type CrashScenario, runCrashScenario } from "./crash-scenario.js";

const SCENARIOS: CrashScenario[] = [
  { journalMode: "DELETE", client: "python", pageSize: 4096, kills: 4 },
  { journalMode: "WAL", client: "better-sqlite3", pageSize: 4096, kills: 4 },
  { journalMode: "TRUNCATE", client: "better-sqlite3", pageSize: 1024, kills: 2 },
  { journalMode: "PERSIST", client: "python", pageSize: 512, kills: 2 },
  { journalMode: "WAL", client: "python", pageSize: 65536, kills: 2 },
];

const baseSeed = testSeed();
let scratchDir: string;

before(() => {
  scratchDir = makeTempDir("crash-scratch");
});

after(() => {
  if (scratchDir !== undefined) removeTempDir(scratchDir);
});

describe(`crash recovery (LITEFS_TEST_SEED=${baseSeed})`, () => {
  SCENARIOS.forEach((scenario, index) => {
    const name = `${scenario.journalMode} via ${scenario.client}, page ${scenario.pageSize}`;
    test(`${name}: ${scenario.kills} kills under load`, async (t) => {
      const node = await LitefsNode.start();
      t.after(() => node.cleanup());
      await runCrashScenario({
        node,
        db: `crash-${scenario.journalMode.toLowerCase()}.db`,
        scenario,
        seed: (baseSeed + index) >>> 0,
        scratchDir,
        diagnostic: (line) => t.diagnostic(line),
      });
    });
  });
});
