#!/usr/bin/env python3
# Lock helper for the FUSE lock tests: one process that holds descriptors and takes POSIX (per process)
# and OFD (per open file description) record locks as told, one command per stdin line, one JSON reply
# per stdout line. Offsets and lengths travel as decimal strings so that 64-bit values stay exact in JS.
#
# Commands (NAME names a descriptor of this process):
#   open NAME PATH                         -> {"ok":true,"fd":N}           (O_RDWR|O_CREAT, 0644)
#   close NAME                             -> {"ok":true}
#   lock CMD NAME TYPE START LEN           CMD: setlk setlkw getlk ofd_setlk ofd_setlkw ofd_getlk
#                                          TYPE: r w u; LEN 0 = to end of file (l_whence = SEEK_SET)
#       set*  -> {"ok":true} | {"ok":false,"errno":"EAGAIN"}
#       *setlkw first prints {"pending":true} right before the blocking call; SIGUSR1 interrupts it:
#             -> {"ok":false,"errno":"EINTR"}
#       get*  -> {"ok":true,"lock":null} | {"ok":true,"lock":{"type":"w","start":"S","len":"L","pid":P}}
#   forkclose NAME                         -> {"ok":true}  a forked child closes its inherited copy of
#                                          NAME and exits; replies once the child is gone
#   pid                                    -> {"ok":true,"pid":N}
#   exit                                   -> exits 0 (closing every descriptor)
# Any failure -> {"ok":false,"errno":"ENAME","error":"text"}.

import errno
import fcntl
import json
import os
import signal
import struct
import sys

# Linux values (asm-generic/fcntl.h); Python's fcntl module lacks the OFD ones before 3.9 on some builds.
F_GETLK, F_SETLK, F_SETLKW = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
COMMANDS = {
    "getlk": F_GETLK,
    "setlk": F_SETLK,
    "setlkw": F_SETLKW,
    "ofd_getlk": F_OFD_GETLK,
    "ofd_setlk": F_OFD_SETLK,
    "ofd_setlkw": F_OFD_SETLKW,
}
TYPES = {"r": fcntl.F_RDLCK, "w": fcntl.F_WRLCK, "u": fcntl.F_UNLCK}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
# struct flock on x86-64 and aarch64: short l_type, short l_whence, off_t l_start, off_t l_len,
# pid_t l_pid, padded to 32 bytes.
FLOCK = struct.Struct("@hhqqi4x")
assert FLOCK.size == 32


class Interrupted(Exception):
    pass


blocking = False


def on_usr1(_signum, _frame):
    # Raising from the handler makes Python give up the interrupted fcntl() instead of retrying it
    # (PEP 475): the syscall itself returned EINTR. Outside a blocking call the signal is ignored.
    if blocking:
        raise Interrupted()


signal.signal(signal.SIGUSR1, on_usr1)
signal.siginterrupt(signal.SIGUSR1, True)  # no SA_RESTART: F_SETLKW must come back with EINTR

fds = {}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def lock(cmd_name, name, type_name, start, length):
    global blocking
    cmd = COMMANDS[cmd_name]
    fd = fds[name]
    arg = FLOCK.pack(TYPES[type_name], os.SEEK_SET, int(start), int(length), 0)
    if cmd in (F_SETLKW, F_OFD_SETLKW):
        reply({"pending": True})
        blocking = True
        try:
            fcntl.fcntl(fd, cmd, arg)
        except Interrupted:
            return {"ok": False, "errno": "EINTR"}
        finally:
            blocking = False
        return {"ok": True}
    out = fcntl.fcntl(fd, cmd, arg)
    if cmd in (F_GETLK, F_OFD_GETLK):
        l_type, _whence, l_start, l_len, l_pid = FLOCK.unpack(out)
        if l_type == fcntl.F_UNLCK:
            return {"ok": True, "lock": None}
        return {
            "ok": True,
            "lock": {"type": TYPE_NAMES[l_type], "start": str(l_start), "len": str(l_len), "pid": l_pid},
        }
    return {"ok": True}


def handle(words):
    if words[0] == "open":
        fds[words[1]] = os.open(words[2], os.O_RDWR | os.O_CREAT, 0o644)
        return {"ok": True, "fd": fds[words[1]]}
    if words[0] == "close":
        os.close(fds.pop(words[1]))
        return {"ok": True}
    if words[0] == "lock":
        return lock(*words[1:6])
    if words[0] == "forkclose":
        child = os.fork()
        if child == 0:
            os.close(fds[words[1]])
            os._exit(0)
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise ValueError("forked child failed with status %d" % status)
        return {"ok": True}
    if words[0] == "pid":
        return {"ok": True, "pid": os.getpid()}
    raise ValueError("unknown command " + words[0])


def main():
    reply({"ok": True, "pid": os.getpid()})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "exit":
            break
        try:
            reply(handle(words))
        except OSError as e:
            reply({"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno)), "error": str(e)})
        except (KeyError, ValueError, TypeError) as e:
            reply({"ok": False, "errno": "EPROTO", "error": repr(e)})


main()
