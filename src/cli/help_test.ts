/** Help as users read it: wrapped at the terminal width (here $COLUMNS: no terminal in tests), never coloured. */

import assert from "node:assert/strict";

const ROOT = new URL("../..", import.meta.url).pathname;
const COMMANDS = [
  [],
  ["forward"],
  ["exec"],
  ["ps"],
  ["stop"],
  ["import"],
  ["import", "kftray"],
  ["version"],
  [
    "completion",
  ],
];

async function help(args: string[], env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}main.ts`, ...args, "--help"],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout);
}

Deno.test("every help text fits the width and has no escape codes, even with FORCE_COLOR", async () => {
  for (const columns of [80, 120]) {
    for (const command of COMMANDS) {
      const text = await help(command, { COLUMNS: String(columns), FORCE_COLOR: "1" });
      for (const line of text.split("\n")) {
        assert.ok(
          line.length <= columns,
          `kf ${command.join(" ")} --help at ${columns}: ${line.length}: ${line}`,
        );
      }
      assert.ok(!text.includes("\x1b"), `escape codes in kf ${command.join(" ")} --help`);
    }
  }
});

Deno.test("descriptions are paragraphs: on a wide terminal a sentence stays on one line", async () => {
  const text = await help(["forward"], { COLUMNS: "400", NO_COLOR: "1" });
  assert.match(text, /^TARGET is kubectl-style: .* mapped to each pod's targetPort\.$/m);
  const narrow = await help(["forward"], { COLUMNS: "80" });
  // wrapped between words, each line filled up to the width (no early breaks from hand-wrapped source text)
  const paragraph = narrow.split("\n\n").find((p) => p.startsWith("TARGET is"))!;
  const lines = paragraph.split("\n");
  assert.ok(lines.length >= 3);
  for (const line of lines.slice(0, -1)) {
    assert.ok(line.length > 60, `short line in a wrapped paragraph: ${line}`);
  }
});

Deno.test("the kubectl plugin names itself kubectl kf in usage lines", async () => {
  const text = await help(["forward"], { KF_PROGRAM_NAME: "kubectl kf" });
  assert.match(text, /^Usage: kubectl kf forward\|fwd /);
});
