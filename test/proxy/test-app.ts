// A small real HTTP app for the proxy tests that need behaviour the guestbook does not have: requests
// that hang, bodies streamed back, answers streamed out slowly, headers shown as they arrived.
//   GET|POST /slow        answers only when the test releases it (with a status, 200 by default);
//                         records the request's close
//   POST     /echo        streams the request body back (chunked)
//   GET      /drip?n=N    N chunks "chunk i\n", one every 20 ms
//   *        /headers     the request's method, url and headers as JSON
//   *        anything     "app <tag>: <method> <url>"

import http from "node:http";
import type { AddressInfo } from "node:net";

export interface TestApp {
  readonly server: http.Server;
  readonly address: AddressInfo;
  /** Every request seen, as "METHOD url". */
  readonly seen: string[];
  /** Resolves with the next /slow request once it arrives. */
  nextSlow(): Promise<SlowRequest>;
}

export interface SlowRequest {
  /** Resolves when the proxy closed the request's connection without an answer. */
  readonly closed: Promise<void>;
  release(body: string, status?: number): void;
}

export async function startTestApp(tag: string, port = 0): Promise<TestApp> {
  const seen: string[] = [];
  const slowQueue: SlowRequest[] = [];
  const slowWaiters: Array<(s: SlowRequest) => void> = [];
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/slow") {
      let released = false;
      const slow: SlowRequest = {
        closed: new Promise((resolve) =>
          res.once("close", () => {
            if (!released) resolve();
          }),
        ),
        release: (body, status = 200) => {
          released = true;
          res.statusCode = status;
          res.end(body);
        },
      };
      req.resume();
      const waiter = slowWaiters.shift();
      if (waiter !== undefined) waiter(slow);
      else slowQueue.push(slow);
      return;
    }
    if (path === "/echo") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      req.pipe(res);
      return;
    }
    if (path === "/drip") {
      const n = Number(new URL(req.url ?? "/", "http://x").searchParams.get("n") ?? "5");
      res.writeHead(200, { "content-type": "text/plain" });
      let i = 0;
      const timer = setInterval(() => {
        res.write(`chunk ${i}\n`);
        if (++i === n) {
          clearInterval(timer);
          res.end();
        }
      }, 20);
      res.once("close", () => clearInterval(timer));
      return;
    }
    if (path === "/headers") {
      req.resume();
      req.once("end", () => {
        res.writeHead(200, { "content-type": "application/json", "litefs-txid": "00000000000000ff" });
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
      });
      return;
    }
    req.resume();
    req.once("end", () => res.end(`app ${tag}: ${req.method} ${req.url}`));
  });
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    server,
    address: server.address() as AddressInfo,
    seen,
    nextSlow: () => {
      const queued = slowQueue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise((resolve) => slowWaiters.push(resolve));
    },
  };
}
