#!/usr/bin/env bash
# Runs SQLite's own TCL test files twice at the same time — once with the working directory on a plain
# directory, once on a mounted file system — and prints the per-file results side by side. A file whose
# results differ is a behaviour of the mount that SQLite's authors test for.
#
#   scripts/sqlite-testsuite.sh [--full] [--fs litefs|node-passthrough|c-passthrough|plain]
#                               [--timeout SECS] [--tsv] [--logs DIR] [TEST…]
#
#   TEST…      test file names without ".test" (default: the reduced list; --full: the long list)
#   --fs       what to compare with the plain directory (default litefs: a fresh `litefs mount` node per
#              file); node-passthrough = examples/passthrough on our FUSE library; c-passthrough =
#              libfuse's passthrough_ll; plain = a second plain directory (checks the harness itself)
#   --timeout  seconds per test file and side (default 600)
#   --tsv      also print one machine-readable line per file:
#              RESULT <test> <plain errors> <plain tests> <plain status> <fs errors> <fs tests> <fs status> <same>
#   --logs     keep each run's full output in DIR (default: a temp dir, kept and printed only when
#              some file differs)
#
# Exit status: 0 when every file gives the same result on both sides, 1 when any differs, 2 on a usage
# or set-up error. The testfixture comes from ../shared/tools/sqlite-testfixture (override with
# SQLITE_TESTFIXTURE_TOOL), which builds it once from Debian's sqlite3 source package.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

# The reduced list: fast files (~30 s in all on a litefs mount) that any correct LiteFS mount must pass
# exactly like a plain directory. test/mountfs/sqlite-testsuite.test.ts runs it.
reduced=(select1 insert delete update vacuum vacuum2 autovacuum walhook wal7 wal9 walpersist walshared pager3
  lock7 busy shared schema alter sync2 bigrow)
# The long list (~4 min): the issue's list, then more journal/WAL/lock/pager files. Many of them cannot
# pass on any LiteFS mount; known_reason() below says why for each.
full=(select1 insert delete update trans journal1 journal2 wal wal2 wal3 lock lock2 pager1 vacuum
  rollback journal3 savepoint savepoint2 autovacuum incrvacuum wal4 wal5 wal6 wal7 wal8 wal9 walmode walpersist
  walcksum walhook walshared bigrow sync sync2 pager2 pager3 pager4 lock3 lock4 lock5 lock6 lock7 busy busy2
  vacuum2 vacuum4 vacuum5 shared schema schema2 alter alter2 alter3)

# Why a file differs on a LiteFS mount, where that is known (measured with SQLite 3.40.1's tests).
# "LiteFS:" = no LiteFS mount can pass it as written; anything else is a defect or a choice of ours.
known_reason() {
  case $1 in
    trans | pager1 | lock2 | lock4 | lock6 | wal5 | busy2)
      echo "LiteFS: writes a Tcl helper script (test.tcl, tf_main.tcl…) into the working directory; the mount holds only databases" ;;
    journal1) echo "LiteFS: copies test.db-journal to a plain file with 'file copy' (a raw write outside SQLite)" ;;
    journal2 | wal | wal3 | walcksum | rollback)
      echo "LiteFS: copies a database into the mount with 'file copy' (raw writes without SQLite's locks or journal; use litefs import)" ;;
    wal4) echo "LiteFS: 'file copy' of a database; also deletes test.db* including the read-only test.db-pos" ;;
    lock | lock3) echo "LiteFS: opens the database through a subdirectory path (tempdir/…); the mount root is flat" ;;
    lock5) echo "LiteFS: the dot-file locking VFS creates a directory test.db.lock; the mount root is flat" ;;
    wal2) echo "LiteFS: testvfs keeps the wal-index in process memory, so WAL locks never reach the mount (commits undetectable); also locking_mode=EXCLUSIVE" ;;
    wal6) echo "LiteFS: journal_mode=MEMORY/OFF and WAL with locking_mode=EXCLUSIVE cannot be replicated (refused on purpose)" ;;
    savepoint) echo "LiteFS: multi-database commits write a super-journal test.db-mj…; journal_mode=MEMORY/OFF" ;;
    sync) echo "LiteFS: multi-database commits write a super-journal test.db-mj… (not a database)" ;;
    incrvacuum) echo "LiteFS: writes a non-database file invalid.db" ;;
    alter2) echo "LiteFS: edits the database file's bytes directly (hexio_write) outside SQLite" ;;
    pager4) echo "LiteFS: renames the database file; renaming databases is refused" ;;
    journal3) echo "choice: every file on a primary is mode 0666 (as LiteFS); the test expects the journal to inherit the database's 0644" ;;
    pager2 | walmode) echo "choice: db_delete_and_reopen deletes glob test.db*, which lists the read-only test.db-pos (EPERM)" ;;
    walpersist) echo "defect: the -shm file is back after the last connection closed (SQLite unlinked it while mapped)" ;;
    *) echo "" ;;
  esac
}

fs=litefs
timeout_secs=600
tsv=0
logs=""
tests=()
while (($#)); do
  case $1 in
    --full) tests+=("${full[@]}") ;;
    --fs) fs=${2:?--fs needs a value}; shift ;;
    --fs=*) fs=${1#--fs=} ;;
    --timeout) timeout_secs=${2:?--timeout needs a value}; shift ;;
    --tsv) tsv=1 ;;
    --logs) logs=${2:?--logs needs a value}; shift ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "sqlite-testsuite: unknown option $1" >&2; exit 2 ;;
    *) tests+=("$1") ;;
  esac
  shift
done
((${#tests[@]})) || tests=("${reduced[@]}")
case $fs in litefs | node-passthrough | c-passthrough | plain) ;; *)
  echo "sqlite-testsuite: --fs must be litefs, node-passthrough, c-passthrough or plain" >&2; exit 2 ;;
esac

tool=${SQLITE_TESTFIXTURE_TOOL:-$repo/../shared/tools/sqlite-testfixture}
testfixture="" testdir=""
while IFS='=' read -r key value; do
  case $key in testfixture) testfixture=$value ;; testdir) testdir=$value ;; esac
done < <(bash "$tool")
[[ -x $testfixture && -d $testdir ]] || { echo "sqlite-testsuite: $tool gave no testfixture/testdir" >&2; exit 2; }
for t in "${tests[@]}"; do
  [[ -f $testdir/$t.test ]] || { echo "sqlite-testsuite: no test file $testdir/$t.test" >&2; exit 2; }
done

# tsc emits even when some file has a type error; a failed check elsewhere need not stop this run.
bash "$repo/scripts/build.sh" >/dev/null 2>&1 || echo "sqlite-testsuite: the build reported type errors; using what it emitted" >&2

base=$(mktemp -d /tmp/litefs-sqlite-testsuite-XXXXXX)
logs=${logs:-$base/logs}
mkdir -p "$logs"
server_pid=""
mnt=""

# Stops the file system server of the current file (SIGTERM, then SIGKILL to its process group) and
# always unmounts — also when the script is interrupted or a test hangs.
stop_fs() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
  if [[ -n $mnt ]]; then
    for _ in 1 2 3; do
      mountpoint -q "$mnt" 2>/dev/null || grep -qs " $mnt " /proc/self/mounts || break
      umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    done
  fi
}
# Keeps the default log folder only when some file differed (or the run was cut short).
cleanup() {
  stop_fs
  if [[ $logs == "$base/logs" && $finished == 1 && $differ == 0 ]]; then
    rm -rf "$base"
    return
  fi
  find "$base" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null || true
  [[ $logs == "$base/logs" ]] || rmdir "$base" 2>/dev/null || true
}
finished=0
differ=0
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free loopback port, drawn as the test harness draws it (test/support/free-port.ts: below the
# ephemeral range, which outgoing connections of tests running beside take ports from).
free_port() {
  node --input-type=module -e "const { freeLoopbackPort } = await import('$repo/dist/test/support/free-port.js'); console.log(await freeLoopbackPort());"
}

wait_mounted() { # dir log
  for _ in $(seq 300); do
    grep -qs " $1 " /proc/self/mounts && return 0
    kill -0 "$server_pid" 2>/dev/null || { echo "sqlite-testsuite: server exited:" >&2; tail -20 "$2" >&2; return 1; }
    sleep 0.1
  done
  echo "sqlite-testsuite: $1 not mounted after 30 s" >&2; tail -20 "$2" >&2; return 1
}

# Starts a fresh file system for one test file; sets $mnt (the working directory for the test).
start_fs() { # test
  local dir=$base/$fs-$1 log=$logs/$fs-$1.server.log
  mkdir -p "$dir"
  mnt=$dir/mnt
  mkdir -p "$mnt"
  case $fs in
    plain) return 0 ;;
    litefs)
      local port
      port=$(free_port)
      cat >"$dir/litefs.yml" <<YML
fuse:
  dir: "$mnt"
data:
  dir: "$dir/data"
  retention: "1h"
http:
  addr: "127.0.0.1:$port"
lease:
  type: static
  candidate: true
  hostname: testsuite
  advertise-url: "http://127.0.0.1:$port"
log:
  format: json
YML
      setsid node --enable-source-maps "$repo/dist/src/cli/main.js" mount --config "$dir/litefs.yml" >"$log" 2>&1 &
      server_pid=$!
      for _ in $(seq 300); do
        grep -qs "mount ready" "$log" && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
      done
      grep -qs "mount ready" "$log" || { echo "sqlite-testsuite: litefs mount not ready:" >&2; tail -20 "$log" >&2; return 1; }
      ;;
    node-passthrough)
      mkdir -p "$dir/src"
      setsid node --enable-source-maps "$repo/dist/examples/passthrough.js" "$dir/src" "$mnt" >"$log" 2>&1 &
      server_pid=$!
      ;;
    c-passthrough)
      local bin
      bin=$(bash "$repo/../shared/tools/fuse-passthrough-c" | tail -n 1)
      mkdir -p "$dir/src"
      setsid "$bin" -o "source=$dir/src" -f "$mnt" >"$log" 2>&1 &
      server_pid=$!
      ;;
  esac
  wait_mounted "$mnt" "$log"
}

run_tests() { # workdir test log
  (cd "$1" && timeout -k 10 "$timeout_secs" "$testfixture" "$testdir/$2.test" --testdir= >"$3" 2>&1) && echo 0 || echo $?
}

# Summarises a run's log as "errors tests status ok-count"; status is ok, aborted or timeout.
summarise() { # log rc
  local line errors=-1 total=-1 status=ok oks
  line=$(grep -E '^[0-9]+ errors out of [0-9]+ tests' "$1" | tail -n 1 || true)
  if [[ -n $line ]]; then
    errors=$(awk '{print $1}' <<<"$line")
    total=$(awk '{print $5}' <<<"$line")
  elif [[ $2 == 124 || $2 == 137 ]]; then
    status=timeout
  else
    status=aborted
  fi
  oks=$(grep -cE '\.\.\. Ok$' "$1" || true)
  echo "$errors $total $status $oks"
}

failures() { grep -E '^! [^ ]+ expected:' "$1" | awk '{print $2}' | sort -u || true; }

describe() { # errors tests status oks
  case $3 in
    ok) echo "$1 errors / $2 tests" ;;
    *) echo "$3 after $4 ok" ;;
  esac
}

printf '%-10s %-28s %-28s %s\n' test plain "$fs" same
for t in "${tests[@]}"; do
  plain_dir=$base/plain-$t
  mkdir -p "$plain_dir"
  start_fs "$t"
  started=$SECONDS
  plain_log=$logs/plain-$t.log fs_log=$logs/$fs-$t.log
  run_tests "$plain_dir" "$t" "$plain_log" >"$base/rc-plain" &
  plain_job=$!
  run_tests "$mnt" "$t" "$fs_log" >"$base/rc-fs" &
  fs_job=$!
  wait "$plain_job" "$fs_job" || true
  secs=$((SECONDS - started))
  stop_fs
  read -r p_err p_total p_status p_ok < <(summarise "$plain_log" "$(cat "$base/rc-plain")")
  read -r f_err f_total f_status f_ok < <(summarise "$fs_log" "$(cat "$base/rc-fs")")
  only_fs=$(comm -13 <(failures "$plain_log") <(failures "$fs_log") | tr '\n' ' ')
  only_plain=$(comm -23 <(failures "$plain_log") <(failures "$fs_log") | tr '\n' ' ')
  same=yes
  if [[ $p_err != "$f_err" || $p_total != "$f_total" || $p_status != "$f_status" || $p_ok != "$f_ok" ||
    -n $only_fs || -n $only_plain ]]; then
    same=no
    differ=1
  fi
  printf '%-10s %-28s %-28s %s (%ss)\n' "$t" "$(describe "$p_err" "$p_total" "$p_status" "$p_ok")" \
    "$(describe "$f_err" "$f_total" "$f_status" "$f_ok")" "$same" "$secs"
  [[ -z $only_fs ]] || echo "           failed only on $fs: ${only_fs:0:400}"
  [[ -z $only_plain ]] || echo "           failed only on plain: ${only_plain:0:400}"
  if [[ $same == no && $fs == litefs ]]; then
    reason=$(known_reason "$t")
    [[ -z $reason ]] || echo "           known: $reason"
  fi
  if ((tsv)); then
    printf 'RESULT\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p_err" "$p_total" "$p_status" "$f_err" "$f_total" \
      "$f_status" "$same"
  fi
done
finished=1
if [[ $logs != "$base/logs" || $differ == 1 ]]; then echo "logs: $logs"; fi
exit "$differ"
