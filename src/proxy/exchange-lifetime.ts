// The lifetime of one exchange (a request and its answer, or an upgrade): ended early when the client
// disconnects or a timeout fires, which must stop everything the exchange started upstream.
//
// Like an AbortController, but the AbortSignal is only made when something asks for it (a TXID wait, a
// pause between connection attempts): the common exchange — connect, relay, done — registers a plain
// callback instead. An AbortController plus Node's signal plumbing on every upstream request cost ~5 %
// of the proxy's CPU per request in bench/proxy.ts.

export class ExchangeLifetime {
  #ended = false;
  #reason: unknown;
  #controller: AbortController | undefined;
  #callbacks: Set<() => void> | undefined;

  /** True once ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Why it ended (undefined while it has not). */
  get reason(): unknown {
    return this.#reason;
  }

  /** An AbortSignal that aborts (with `reason`) when the exchange ends; made on first use. */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#ended) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Ends the exchange; later calls change nothing. Runs every registered callback once. */
  end(reason: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const callbacks = this.#callbacks;
    this.#callbacks = undefined;
    if (callbacks !== undefined) for (const callback of callbacks) callback();
  }

  /** Calls `callback` when the exchange ends (at once if it has); returns the function that unregisters it. */
  onEnd(callback: () => void): () => void {
    if (this.#ended) {
      callback();
      return () => undefined;
    }
    this.#callbacks ??= new Set();
    this.#callbacks.add(callback);
    return () => this.#callbacks?.delete(callback);
  }
}
