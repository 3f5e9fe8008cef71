// Splits an `exec` command line into argv the way a POSIX shell splits words — LiteFS runs `exec`
// commands without a shell, after splitting them into words, and so do we. Splitting here, at config
// time, lets a bad command (an unclosed quote, a pipe that no shell will ever see) be reported with the
// file's line:column instead of failing after the mount is up.
//
// Supported: blanks separate words; '…' is literal; "…" is literal except \" \\ \$ \` and
// backslash-newline; a backslash outside quotes escapes the next character. Not supported, and an error
// when unquoted: | & ; < > ( ) ` — shell syntax that would silently become arguments. Globs (* ?) and
// ~ are passed through as plain characters: no shell, no expansion.

export type ShellWordsResult = { ok: true; words: string[] } | { ok: false; reason: string };

const BLANK = new Set([" ", "\t", "\n", "\r"]);
const SHELL_ONLY = new Set(["|", "&", ";", "<", ">", "(", ")", "`"]);
const ESCAPABLE_IN_DOUBLE_QUOTES = new Set(['"', "\\", "$", "`"]);

export function splitShellWords(line: string): ShellWordsResult {
  const words: string[] = [];
  let word = "";
  let inWord = false; // distinguishes an empty quoted word ('') from no word at all
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (BLANK.has(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else if (c === "'") {
      const close = line.indexOf("'", i + 1);
      if (close < 0) return { ok: false, reason: `unterminated ' quote at character ${i + 1}` };
      word += line.slice(i + 1, close);
      inWord = true;
      i = close;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\" && j + 1 < line.length) {
          const escaped = line[j + 1];
          if (escaped === "\n") j++;
          else if (ESCAPABLE_IN_DOUBLE_QUOTES.has(escaped)) word += line[++j];
          else word += "\\";
        } else {
          word += line[j];
        }
      }
      if (j >= line.length) return { ok: false, reason: `unterminated " quote at character ${i + 1}` };
      inWord = true;
      i = j;
    } else if (c === "\\") {
      if (i + 1 >= line.length) return { ok: false, reason: "trailing backslash" };
      if (line[i + 1] !== "\n") {
        word += line[i + 1];
        inWord = true;
      }
      i++;
    } else if (SHELL_ONLY.has(c)) {
      return {
        ok: false,
        reason:
          `"${c}" at character ${i + 1} is shell syntax, but commands run without a shell; ` +
          `quote it, or run a shell explicitly: sh -c '…'`,
      };
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  if (words.length === 0) return { ok: false, reason: "empty command" };
  return { ok: true, words };
}
