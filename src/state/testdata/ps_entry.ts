/** A minimal executable around `kf ps` / `kf stop` for black-box tests, until main.ts dispatches to them. */

import { formatError, KfError } from "../../errors.ts";
import { psCommand } from "../../cli/ps.ts";
import { stopCommand } from "../../cli/stop.ts";

const [name, ...args] = Deno.args;
const command = name === "stop" ? stopCommand() : psCommand();
try {
  await command.exitOverride().parseAsync(args, { from: "user" });
} catch (error) {
  console.error(formatError(error));
  Deno.exitCode = error instanceof KfError ? error.exitCode : 1;
}
