// One line on stderr, rewritten in place, that says what a waiting command is
// doing. Only on a terminal: piped or redirected output never sees it, so
// scripts and --json get clean streams.

export interface StatusLine {
  /** Whether the line is shown (stderr is a terminal and it was wanted). */
  readonly live: boolean;
  /** Replaces the status text. */
  set(text: string): void;
  /** Writes a line of output to stdout above the status line. */
  print(line: string): void;
  /** Removes the status line for good. */
  clear(): void;
}

export function statusLine(enabled: boolean, stream: NodeJS.WriteStream = process.stderr): StatusLine {
  if (!enabled || !stream.isTTY) {
    return { live: false, set() {}, print: (line) => void process.stdout.write(`${line}\n`), clear() {} };
  }
  let text = "";
  // Carriage return, then erase the line: the next write starts clean.
  const erase = () => stream.write("\r\x1b[2K");
  // Cut to the terminal's width: a wrapped line could not be rewritten by \r.
  const draw = () => {
    const width = stream.columns || Number.POSITIVE_INFINITY; // 0 when the terminal does not say
    if (text) stream.write(text.length >= width ? `${text.slice(0, Math.max(0, width - 2))}…` : text);
  };
  return {
    live: true,
    set(next) {
      text = next;
      erase();
      draw();
    },
    print(line) {
      erase();
      process.stdout.write(`${line}\n`);
      draw();
    },
    clear() {
      if (text) erase();
      text = "";
    },
  };
}
