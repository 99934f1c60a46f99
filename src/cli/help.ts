// Help text shared by every command: examples after the options.

import type { Command } from "commander";

/** Adds an "Examples:" section to the command's --help. */
export function examples(command: Command, lines: readonly string[]): Command {
  return command.addHelpText("after", `\nExamples:\n${lines.map((line) => (line.startsWith("#") ? `  ${line}` : `  $ ${line}`)).join("\n")}`);
}
