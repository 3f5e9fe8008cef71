// Worker thread of the Notifier: writes notification messages to /dev/fuse. It exists because such a
// write can block inside the kernel until a request of the same file system is answered (an entry
// invalidation takes the parent directory's lock, which a LOOKUP in progress holds; an inode
// invalidation waits for pages under read), and those requests are answered by the main thread.
// Messages: in { id, message: Uint8Array }; out { id, errno: number } (0 on success).

import * as fs from "node:fs";
import { parentPort, workerData } from "node:worker_threads";

interface NotifyJob {
  id: number;
  message: Uint8Array;
}

const fd = (workerData as { fd: number }).fd;
const port = parentPort;
if (port === null) throw new Error("notify-worker must run as a worker thread");

port.on("message", (job: NotifyJob) => {
  let errno = 0;
  try {
    fs.writeSync(fd, job.message);
  } catch (err) {
    const e = err as { errno?: number };
    errno = typeof e.errno === "number" ? -e.errno : 5; // EIO when the error carries no errno
  }
  port.postMessage({ id: job.id, errno });
});
