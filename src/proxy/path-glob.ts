// Path globs of `proxy.passthrough` and `proxy.always-forward`, with LiteFS's meaning: the whole path
// must match, `*` matches any run of characters (slashes included, so "/static/*" covers every file
// below /static), and every other character stands for itself. Matched against the request's decoded
// path, without the query string.

export class PathGlob {
  readonly pattern: string;
  readonly #regex: RegExp;

  constructor(pattern: string) {
    if (pattern.length === 0) throw new RangeError("PathGlob: empty pattern");
    this.pattern = pattern;
    const body = pattern
      .split("*")
      .map((literal) => literal.replace(/[.+?^${}()|[\]\\/-]/g, "\\$&"))
      .join("[\\s\\S]*");
    this.#regex = new RegExp(`^${body}$`);
  }

  matches(path: string): boolean {
    return this.#regex.test(path);
  }
}

/** A list of globs; matches when any of them does. */
export class PathGlobList {
  readonly #globs: readonly PathGlob[];

  constructor(patterns: readonly string[]) {
    this.#globs = patterns.map((p) => new PathGlob(p));
  }

  get size(): number {
    return this.#globs.length;
  }

  matches(path: string): boolean {
    for (const glob of this.#globs) if (glob.matches(path)) return true;
    return false;
  }
}
