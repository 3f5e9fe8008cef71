// Entry point of `bin/litefs`: picks the subcommand and runs it. Each subcommand lives in its own
// module, loaded only when used, and returns the process exit code.

import { compileEagerly } from "./eager-compile.js";

export interface Subcommand {
  /** One line for `litefs help`. */
  summary: string;
  /** Runs the subcommand with the arguments after its name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

type Loader = () => Promise<Subcommand>;

const subcommands: Record<string, Loader> = {
  ltx: async () => (await import("./ltx-command.js")).ltxCommand,
  mount: async () => (await import("./mount-command.js")).mountCommand,
  import: async () => (await import("./import-command.js")).importCommand,
  export: async () => (await import("./export-command.js")).exportCommand,
  status: async () => (await import("./status-command.js")).statusCommand,
  run: async () => (await import("./run-command.js")).runCommand,
  promote: async () => (await import("./promote-command.js")).promoteCommand,
  version: async () => ({
    summary: "print the version",
    run: async () => {
      process.stdout.write(`litefs-ts ${VERSION}\n`);
      return 0;
    },
  }),
};

export const VERSION = "0.1.0";

function usage(): string {
  return [
    "usage: litefs <command> [arguments]",
    "",
    "commands:",
    ...Object.keys(subcommands).map((name) => `  ${name}`),
    "",
    "Run `litefs <command> --help` for a command's options.",
    "",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const load = subcommands[name];
  if (load === undefined) {
    process.stderr.write(`litefs: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  // The node's modules compile as they load, once (eager-compile.ts): before they are imported.
  if (name === "mount") compileEagerly();
  const command = await load();
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`litefs: ${message}\n`);
    process.exitCode = 1;
  },
);
