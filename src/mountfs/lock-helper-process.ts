// The child process that holds the node's kernel locks (kernel-node-locks.ts): a small perl program
// (perl-base is Essential on Debian: always there) that opens files in the node's own mount and takes
// OFD record locks on them (F_OFD_SETLK; the kernel makes those conflict with SQLite's classic POSIX
// locks). Why a child: the node serves the mount, and a process that holds a file of its own mount
// cannot die (docs/fuse.md); the helper's opens are ordinary FUSE requests the node answers on its
// event loop — the node only ever awaits the helper's answers, never waits for it synchronously.
//
// Protocol: one request per line on the helper's stdin, one answer per line on its stdout, in order,
// each starting with the request's id. The helper never blocks on a lock (F_OFD_SETLK only, never
// SETLKW): waiting is the caller's polling, so one owner's wait never stalls another's request.
//   V id                       → id ok PID FLOCKSIZE               (ping: FLOCKSIZE must be 32)
//   O id KEY r|w HEXPATH [INO] → id ok | id err ERRNO TEXT        (open, never creates; INO below)
//   L id KEY TYPE START LEN …  → id ok | id busy I,J… | id err ERRNO TEXT
//                                 (TYPE 0 read, 1 write, 2 unlock; every range is tried, busy lists the
//                                 indexes of those not taken; LEN 0 is "to end of file")
//   R id KEY OFFSET LEN        → id ok HEX | id err ERRNO TEXT    (pread)
//   C id KEY                   → id ok                            (close: drops that descriptor's locks;
//                                 answered once they are gone, before the spare bookkeeping below)
//   S id HEXPATH               → id ok | id err ERRNO TEXT        (stat: the kernel asks the node for
//                                 the file's attributes if it holds none; see kernel-node-locks.ts
//                                 `refreshAttributes`)
// The helper exits when its stdin closes: when the node closes it, and when the node dies (kill -9
// closes the pipe), so it never outlives the node holding locks.
// Bounded: a request not answered within `answerTimeoutMs` (default 30 s; the helper answers in order,
// so one hung request — an open in the mount that never returns — holds up every later one) ends the
// helper: it is killed (its locks drop with it), every waiting and later request fails ELOCKHELPER
// naming the request, and the node is told as for a death.

import { type ChildProcess, spawn } from "node:child_process";
import type { Socket } from "node:net";

import { NodeLockError } from "./node-locks.js";

/**
 * The helper program. struct flock on 64-bit Linux (the generic layout every 64-bit architecture
 * uses): short type, short whence, pad 4, off_t start, off_t len, int pid, pad 4
 * (`pack("s s x4 q q l x4")`, 32 bytes; l_pid must be 0 for OFD locks; F_OFD_SETLK is 37 everywhere).
 * The ping's answer carries the packed size, checked at start (a perl without 64-bit integers, or a
 * 32-bit system, is refused there). A closed descriptor is unlocked and kept (at most 4 per path and
 * mode, for owners that overlap: apply, HALT, export) for the next open of the same path, which reuses
 * it only if it is still the file at that path — its inode number, read once when it was opened, is the
 * one there now: an open and a close through the mount are ~3 FUSE requests, a replica applies a
 * transaction under a new owner each time. Which inode is there now: the node says so itself when it
 * can (INO, the node id it would answer for the path: st_ino in the mount is the node id), and the
 * reuse costs no request to the mount at all; without INO the helper stats the path (one FUSE request,
 * answered on the node's busy event loop). A close is answered as soon as the descriptor's locks are
 * gone; only then are the spares of its path that no longer are the file there (a removed `-shm`, a
 * deleted database) closed, so none keeps a removed file alive in the mount for long, and the
 * descriptor joins them if it still is that file.
 */
const HELPER_SOURCE = String.raw`
use strict; use warnings; use Fcntl qw(O_RDONLY O_RDWR O_NOFOLLOW);
$| = 1;
my (%fh, %origin, %pool);
sub failure { return 'err ' . ($! + 0) . ' ' . $!; }
sub setlk { my ($h, $type, $start, $len) = @_; return fcntl($h, 37, pack('s s x4 q q l x4', $type, 0, $start, $len, 0)); }
while (defined(my $line = <STDIN>)) {
  chomp $line;
  my ($op, $id, @a) = split / /, $line;
  my $reply;
  if ($op eq 'V') {
    $reply = "ok $$ " . length(eval { pack('s s x4 q q l x4', 0, 0, 0, 0, 0) } // '');
  } elsif ($op eq 'O') {
    my ($key, $mode, $hex, $ino) = @a;
    my $path = pack('H*', $hex);
    my $pk = "$mode $hex";
    my $spare = ($pool{$pk} //= []);
    my $d;
    if (defined $ino) {
      my @same = grep { $_->[1] == $ino ? 1 : (close($_->[0]), 0) } @$spare;
      $d = pop @same;
      @$spare = @same;
    } elsif (my @st = stat($path)) {
      while (defined(my $c = pop @$spare)) {
        if ($c->[1] == $st[1]) { $d = $c; last; }
        close($c->[0]);
      }
    } else {
      close($_->[0]) for @$spare;
      @$spare = ();
    }
    if (!defined $d) {
      my $h;
      if (sysopen($h, $path, ($mode eq 'w' ? O_RDWR : O_RDONLY) | O_NOFOLLOW)) {
        my @hs = stat($h);
        if (@hs) { $d = [$h, $hs[1]]; } else { close($h); }
      }
    }
    if (defined $d) { $fh{$key} = $d; $origin{$key} = $pk; $reply = 'ok'; }
    else { $reply = failure(); }
  } elsif ($op eq 'L') {
    my ($key, $type, @ranges) = @a;
    my $h = ($fh{$key} // [])->[0];
    if (!defined $h) { $reply = 'err 9 no such descriptor'; }
    else {
      my @missed;
      for (my $i = 0; $i * 2 < @ranges; $i++) {
        next if defined setlk($h, $type, $ranges[$i * 2], $ranges[$i * 2 + 1]);
        if ($!{EAGAIN} || $!{EACCES}) { push @missed, $i; next; }
        $reply = failure();
        last;
      }
      $reply //= @missed ? 'busy ' . join(',', @missed) : 'ok';
    }
  } elsif ($op eq 'R') {
    my ($key, $offset, $len) = @a;
    my $h = ($fh{$key} // [])->[0];
    my $buf = '';
    if (!defined $h) { $reply = 'err 9 no such descriptor'; }
    elsif (defined sysseek($h, $offset, 0) && defined sysread($h, $buf, $len)) { $reply = 'ok ' . unpack('H*', $buf); }
    else { $reply = failure(); }
  } elsif ($op eq 'S') {
    $reply = stat(pack('H*', $a[0])) ? 'ok' : failure();
  } elsif ($op eq 'C') {
    my ($key) = @a;
    my $d = delete $fh{$key};
    my $pk = delete $origin{$key};
    if (defined $d && !defined setlk($d->[0], 2, 0, 0)) { close($d->[0]); undef $d; }
    print "$id ok\n";
    next if !defined $d;
    my @st = stat(pack('H*', (split / /, $pk)[1]));
    my $spare = ($pool{$pk} //= []);
    @$spare = grep { @st && $_->[1] == $st[1] ? 1 : (close($_->[0]), 0) } @$spare;
    if (@$spare < 4 && @st && $d->[1] == $st[1]) { push @$spare, $d; } else { close($d->[0]); }
    next;
  } else {
    $reply = 'err 22 unknown request';
  }
  print "$id $reply\n";
}
`;

/** An answer: "ok" with its fields, "busy" with the indexes of the ranges not taken, or an errno with its text. */
export type HelperAnswer =
  | { readonly kind: "ok"; readonly fields: readonly string[] }
  | { readonly kind: "busy"; readonly fields: readonly string[] }
  | { readonly kind: "err"; readonly errno: number; readonly text: string };

interface Pending {
  readonly resolve: (answer: HelperAnswer) => void;
  readonly reject: (err: Error) => void;
  /** The request line, for the error when it is not answered in time. */
  readonly line: string;
  readonly timer: NodeJS.Timeout;
}

/** Architectures whose struct flock has the generic 64-bit layout the helper packs. */
const SIXTY_FOUR_BIT_ARCHES = new Set(["x64", "arm64", "ppc64", "s390x", "riscv64", "loong64"]);
const ANSWER_TIMEOUT_MS = 30_000;

export class LockHelperProcess {
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, Pending>();
  readonly #exited: Promise<void>;
  #nextId = 1;
  #buffered = "";
  #stderr = "";
  /** Set once the helper is unusable; every request then fails with it. */
  #failure: NodeLockError | null = null;
  #closing = false;

  readonly #answerTimeoutMs: number;
  /** `onDeath` was told already (a request not answered in time). */
  #deathReported = false;
  readonly #onDeath: (err: NodeLockError) => void;

  private constructor(child: ChildProcess, onDeath: (err: NodeLockError) => void, answerTimeoutMs: number) {
    this.#child = child;
    this.#answerTimeoutMs = answerTimeoutMs;
    this.#onDeath = onDeath;
    this.pid = child.pid!;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => this.#onData(chunk));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-2000);
    });
    child.stdin!.on("error", () => undefined); // EPIPE after a death: the exit handler reports it
    child.once("exit", (code, signal) => {
      const how = code !== null ? `exit code ${code}` : `signal ${signal}`;
      const why = this.#closing ? "was closed" : `died (${how})`;
      const detail = this.#stderr.trim() === "" ? "" : `: ${this.#stderr.trim()}`;
      const err = new NodeLockError("ELOCKHELPER", `lock helper (perl, pid ${this.pid}) ${why}${detail}`);
      if (!this.#closing && !this.#deathReported) onDeath(err);
      this.#fail(err);
    });
    this.#setRef(false);
  }

  /**
   * Starts the helper and checks that it answers. Rejects with ELOCKHELPER when perl cannot be run.
   * `onDeath` is told once if the helper dies while in use (not after `close`).
   */
  static async start(
    onDeath: (err: NodeLockError) => void,
    opts: { readonly answerTimeoutMs?: number } = {},
  ): Promise<LockHelperProcess> {
    if (process.platform !== "linux" || !SIXTY_FOUR_BIT_ARCHES.has(process.arch)) {
      throw new NodeLockError(
        "ELOCKHELPER",
        `the lock helper knows struct flock on 64-bit Linux only (this is ${process.platform}/${process.arch}): ` +
          "use fuse.kernel-locks: false",
      );
    }
    const child = spawn("perl", ["-e", HELPER_SOURCE], { cwd: "/", stdio: ["pipe", "pipe", "pipe"] });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (err) =>
        reject(new NodeLockError("ELOCKHELPER", `cannot start the lock helper (perl): ${err.message}`)),
      );
    });
    const helper = new LockHelperProcess(child, onDeath, opts.answerTimeoutMs ?? ANSWER_TIMEOUT_MS);
    const answer = await helper.request(["V"]);
    if (answer.kind !== "ok" || answer.fields[0] !== String(helper.pid) || answer.fields[1] !== "32") {
      await helper.close();
      const why =
        answer.kind === "ok" && answer.fields[1] !== "32" ? " (struct flock is not 32 bytes there)" : "";
      throw new NodeLockError(
        "ELOCKHELPER",
        `the lock helper answered ${JSON.stringify(answer)} to a ping${why}`,
      );
    }
    return helper;
  }

  /** Sends one request (`[op, ...args]`, no id) and resolves with its answer. */
  request(parts: readonly string[]): Promise<HelperAnswer> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const [op, ...args] = parts;
    const line = [op, id, ...args].join(" ");
    return new Promise<HelperAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.#notAnswered(line), this.#answerTimeoutMs);
      timer.unref();
      this.#pending.set(id, { resolve, reject, line, timer });
      if (this.#pending.size === 1) this.#setRef(true);
      this.#child.stdin!.write(`${line}\n`);
    });
  }

  /** Ends the helper (its descriptors close, dropping every lock) and waits until it has exited. */
  async close(): Promise<void> {
    this.#closing = true;
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      this.#child.stdin!.end();
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
      await this.#exited;
      clearTimeout(timer);
    }
  }

  #onData(chunk: string): void {
    this.#buffered += chunk;
    let nl: number;
    while ((nl = this.#buffered.indexOf("\n")) >= 0) {
      const line = this.#buffered.slice(0, nl);
      this.#buffered = this.#buffered.slice(nl + 1);
      const [idText, kind, ...rest] = line.split(" ");
      const id = Number(idText);
      const pending = this.#pending.get(id);
      if (pending === undefined) {
        this.#fail(new NodeLockError("ELOCKHELPER", `lock helper answered an unknown request: ${line}`));
        this.#child.kill("SIGKILL");
        return;
      }
      this.#pending.delete(id);
      clearTimeout(pending.timer);
      if (this.#pending.size === 0) this.#setRef(false);
      if (kind === "ok") pending.resolve({ kind: "ok", fields: rest });
      else if (kind === "busy") pending.resolve({ kind: "busy", fields: rest });
      else pending.resolve({ kind: "err", errno: Number(rest[0]), text: rest.slice(1).join(" ") });
    }
  }

  /** A request was not answered in time: the helper is stuck (see the header) and is ended. */
  #notAnswered(line: string): void {
    if (this.#failure !== null) return;
    const err = new NodeLockError(
      "ELOCKHELPER",
      `lock helper (perl, pid ${this.pid}) did not answer "${line.slice(0, 80)}" within ${this.#answerTimeoutMs} ms ` +
        "(a request hangs, e.g. an open in the mount): killed; the node's locks are gone",
    );
    this.#fail(err);
    if (!this.#closing) {
      this.#deathReported = true;
      this.#onDeath(err);
    }
    this.#child.kill("SIGKILL");
  }

  #fail(err: NodeLockError): void {
    this.#failure ??= err;
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.timer);
      pending.reject(this.#failure);
    }
    this.#pending.clear();
    this.#setRef(false);
  }

  /** The helper keeps the node's event loop alive only while an answer is awaited. */
  #setRef(on: boolean): void {
    const handles = [this.#child.stdout, this.#child.stdin] as unknown as Array<Socket | null>;
    for (const h of handles) {
      if (on) h?.ref();
      else h?.unref();
    }
    if (on) this.#child.ref();
    else this.#child.unref();
  }
}
