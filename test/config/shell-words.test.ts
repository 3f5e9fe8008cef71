import assert from "node:assert/strict";
import { test } from "node:test";
import { splitShellWords } from "../../src/config/shell-words.js";

const words = (line: string) => {
  const result = splitShellWords(line);
  assert.ok(result.ok, `${line}: ${result.ok ? "" : result.reason}`);
  return result.words;
};
const reason = (line: string) => {
  const result = splitShellWords(line);
  assert.ok(!result.ok, `${line} should not split`);
  return result.reason;
};

test("blanks separate words; quotes and backslashes group them", () => {
  assert.deepEqual(words("myapp -addr :8080"), ["myapp", "-addr", ":8080"]);
  assert.deepEqual(words("  a\t b \n c  "), ["a", "b", "c"]);
  assert.deepEqual(words("echo 'a b' \"c d\""), ["echo", "a b", "c d"]);
  assert.deepEqual(words("echo 'it''s'"), ["echo", "its"]);
  assert.deepEqual(words('echo "it\'s" \'say "hi"\''), ["echo", "it's", 'say "hi"']);
  assert.deepEqual(words('echo "a\\"b" "c\\\\d" "e\\nf" "\\$x"'), ["echo", 'a"b', "c\\d", "e\\nf", "$x"]);
  assert.deepEqual(words("echo a\\ b \\'c"), ["echo", "a b", "'c"]);
  assert.deepEqual(words("echo '' \"\""), ["echo", "", ""], "empty quoted words are words");
  assert.deepEqual(
    words("run --flag='a|b;c' \"x > y\""),
    ["run", "--flag=a|b;c", "x > y"],
    "quoted shell syntax is text",
  );
  assert.deepEqual(words("ls *.db ~/x"), ["ls", "*.db", "~/x"], "no globbing, no ~ expansion");
  assert.deepEqual(words("a\\\nb"), ["ab"], "backslash-newline joins");
});

test("unclosed quotes, shell syntax and empty commands are errors", () => {
  assert.match(reason("echo 'abc"), /unterminated ' quote at character 6/);
  assert.match(reason('echo "abc'), /unterminated " quote at character 6/);
  assert.match(reason("echo abc\\"), /trailing backslash/);
  assert.match(reason("a | b"), /"\|" at character 3 is shell syntax.*sh -c/);
  for (const c of ["&", ";", "<", ">", "(", ")", "`"]) assert.match(reason(`a ${c} b`), /shell syntax/);
  assert.match(reason("migrate && serve"), /"&"/);
  assert.equal(reason(""), "empty command");
  assert.equal(reason("   "), "empty command");
});
