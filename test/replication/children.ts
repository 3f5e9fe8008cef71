// Running the bank child (bank-child.ts) from a test: a writer through the primary's mount, readers
// through replicas' mounts, each in its own process, results back as JSON.

import * as path from "node:path";

import { runCommand } from "../support/litefs-cli.js";
import { REPO_ROOT } from "../support/paths.js";

const BANK_CHILD = path.join(REPO_ROOT, "dist", "test", "replication", "bank-child.js");

export interface BankWriterJob {
  dbPath: string;
  journalMode: string;
  accounts: number;
  durationMs: number;
  seed: number;
  init: boolean;
}

export interface BankReaderJob {
  dbPath: string;
  accounts: number;
  durationMs: number;
}

export interface BankReaderResult {
  reads: number;
  busy: number;
  violations: string[];
  maxSeen: number;
}

async function runBank<T>(job: object, timeoutMs: number): Promise<T> {
  const result = await runCommand(process.execPath, [BANK_CHILD, JSON.stringify(job)], { timeoutMs });
  if (result.code !== 0) {
    throw new Error(
      `bank child ${JSON.stringify(job)} failed (exit ${result.code ?? result.signal}): ${result.stderr}`,
    );
  }
  return JSON.parse(result.stdout) as T;
}

export function runBankWriter(job: BankWriterJob): Promise<{ transfers: number }> {
  return runBank({ role: "writer", ...job }, job.durationMs + 60_000);
}

export function runBankReader(job: BankReaderJob): Promise<BankReaderResult> {
  return runBank({ role: "reader", ...job }, job.durationMs + 60_000);
}
