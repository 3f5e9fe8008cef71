// Runs `litefs <command> …` (the compiled CLI) as a child process and collects its output.
import { spawn } from "node:child_process";
import { CLI_MAIN, REPO_ROOT } from "./paths.js";

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs the CLI to completion (SIGKILL after `timeoutMs`, default 60 s). Never rejects on a bad exit code. */
export async function runLitefsCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return runCommand(process.execPath, ["--enable-source-maps", CLI_MAIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    ...options,
  });
}

/** Runs any command to completion and collects stdout/stderr; stdin gets `input` (or nothing). */
export async function runCommand(
  command: string,
  args: readonly string[],
  options: CliOptions & { input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.once("error", (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on("error", () => {
      // The child may exit without reading its input (EPIPE); its exit status tells the story.
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Like runLitefsCli, but throws (with the output) unless the exit code is 0; resolves with stdout. */
export async function litefsCliOk(args: readonly string[], options: CliOptions = {}): Promise<string> {
  const result = await runLitefsCli(args, options);
  if (result.code !== 0) {
    throw new Error(
      `litefs ${args.join(" ")} exited with ${result.code ?? result.signal}\n${result.stderr}${result.stdout}`,
    );
  }
  return result.stdout;
}
