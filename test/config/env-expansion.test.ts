import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ConfigError } from "../../src/config/config-error.js";
import { expandEnv, expandEnvTracked } from "../../src/config/env-expansion.js";

const env = { HOST: "node1", REGION: "ams", PRIMARY_REGION: "ams", EMPTY: "", N1: "x" };

test("$NAME and ${NAME} expand; unset variables become empty", () => {
  assert.equal(expandEnv("hostname: $HOST", env), "hostname: node1");
  assert.equal(expandEnv("hostname: ${HOST}", env), "hostname: node1");
  assert.equal(expandEnv("url: http://${HOST}:20202/x", env), "url: http://node1:20202/x");
  assert.equal(expandEnv("a: $HOST.internal", env), "a: node1.internal", "names stop at non-word characters");
  assert.equal(expandEnv("a: ${ HOST }", env), "a: node1", "blanks inside braces are trimmed");
  assert.equal(expandEnv("a: $MISSING|${MISSING}|", env), "a: ||");
  assert.equal(expandEnv("a: $N1", env), "a: x", "digits are name characters, as in Go");
  assert.equal(expandEnv("no variables here", env), "no variables here");
});

test("${A == 'x'} and ${A != 'x'} give true/false", () => {
  assert.equal(expandEnv("c: ${REGION == 'ams'}", env), "c: true");
  assert.equal(expandEnv("c: ${REGION == 'fra'}", env), "c: false");
  assert.equal(expandEnv("c: ${REGION != 'ams'}", env), "c: false");
  assert.equal(expandEnv("c: ${REGION != 'fra'}", env), "c: true");
  assert.equal(expandEnv('c: ${REGION == "ams"}', env), "c: true", "double quotes");
  assert.equal(expandEnv("c: ${REGION=='ams'}", env), "c: true", "no blanks needed");
  assert.equal(expandEnv("c: ${MISSING == ''}", env), "c: true", "unset compares as empty");
  assert.equal(expandEnv("c: ${REGION == PRIMARY_REGION}", env), "c: true", "two variables");
  assert.equal(expandEnv("c: ${REGION != PRIMARY_REGION}", env), "c: false");
  assert.equal(expandEnv("c: ${HOST == 'a b'}", { HOST: "a b" }), "c: true");
});

test("${NAME:-default}, $$ and lone dollars", () => {
  assert.equal(expandEnv("p: ${PORT:-20202}", env), "p: 20202");
  assert.equal(expandEnv("p: ${EMPTY:-d}", env), "p: d", "empty counts as unset");
  assert.equal(expandEnv("p: ${HOST:-d}", env), "p: node1");
  assert.equal(expandEnv("p: ${X:-}", env), "p: ");
  assert.equal(expandEnv("price: $$5 and $$HOST", env), "price: $5 and $HOST");
  assert.equal(expandEnv("a: 5$ $ $- $/ $", env), "a: 5$ $ $- $/ $");
});

test("malformed ${…} is a syntax error at its line:column", () => {
  const failure = (text: string) => {
    try {
      expandEnv(text, env, "litefs.yml");
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, "ECONFIG");
      assert.equal(err.kind, "syntax");
      return err.message;
    }
    assert.fail("expected an error");
  };
  assert.equal(failure("a: 1\nb: x ${HOST\nc: }"), "litefs.yml:2:6 unterminated ${ (no } on the same line)");
  assert.equal(failure("a: ${}"), "litefs.yml:1:4 empty ${}");
  assert.equal(failure("a: ${  }"), "litefs.yml:1:4 empty ${}");
  assert.match(
    failure("a: ${HOST = 'x'}"),
    /^litefs\.yml:1:4 unsupported expression \$\{HOST = 'x'\} \(expected/,
  );
  assert.match(failure("a: ${A-B}"), /unsupported expression/);
});

test("offsets in the expanded text map back to where the user wrote them", () => {
  const text = "a: ${HOST}\nb: $MISSING x\nc: $$y";
  const expanded = expandEnvTracked(text, env);
  assert.equal(expanded.text, "a: node1\nb:  x\nc: $y");
  const back = (needle: string) => expanded.sourceOffset(expanded.text.indexOf(needle));
  assert.equal(back("a:"), 0);
  assert.equal(back("node1"), text.indexOf("${HOST}"));
  assert.equal(
    expanded.sourceOffset(expanded.text.indexOf("node1") + 3),
    text.indexOf("${HOST}"),
    "inside a value",
  );
  assert.equal(back("b:"), text.indexOf("b:"));
  assert.equal(back("x\n"), text.indexOf("x\n"));
  assert.equal(back("c:"), text.indexOf("c:"));
  assert.equal(back("y"), text.indexOf("y"));
});

test("property: text without $ is unchanged and every offset maps to itself", () => {
  fc.assert(
    fc.property(
      fc.string().filter((s) => !s.includes("$")),
      (text) => {
        const expanded = expandEnvTracked(text, env);
        assert.equal(expanded.text, text);
        for (let i = 0; i <= text.length; i++) assert.equal(expanded.sourceOffset(i), i);
      },
    ),
  );
});

test("property: characters outside substitutions map back to the same character", () => {
  const piece = fc.oneof(
    // Plain text starts with a non-name character so that it cannot extend a preceding $NAME.
    fc.stringMatching(/^([ :\n./-][a-z :\n]{0,7})?$/),
    fc.constantFrom("$HOST", "${HOST}", "$MISSING", "${REGION == 'ams'}", "$$", "${X:-dflt}"),
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }), (pieces) => {
      const text = pieces.join("");
      const expanded = expandEnvTracked(text, env);
      let out = 0;
      let source = 0;
      // A substitution that produced nothing owns the offset where the next text starts: a value
      // written as "${EMPTY}x" starts at its "$".
      let emptySubstitutionAt: number | undefined;
      for (const p of pieces) {
        const value = expandEnv(p, env);
        for (let k = 0; k < value.length; k++) {
          const expected = p.startsWith("$")
            ? source
            : k === 0 && emptySubstitutionAt !== undefined
              ? emptySubstitutionAt
              : source + k;
          assert.equal(expanded.sourceOffset(out + k), expected);
        }
        if (p.startsWith("$") && value === "") emptySubstitutionAt = source;
        else if (value !== "") emptySubstitutionAt = undefined;
        out += value.length;
        source += p.length;
      }
      assert.equal(out, expanded.text.length);
    }),
  );
});
